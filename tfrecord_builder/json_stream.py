"""Reads a large JSON file element by element, in bounded memory, with Python's own JSON scanner.

The competition's annotation files are single JSON documents (iNat2021's train.json lists 2.7 M
images and 2.7 M annotations); `json.load` holds the whole text and then ~1.5 KB of Python objects
per image at once. Here the top-level object is walked key by key and the elements of chosen
arrays ("images", "annotations") are decoded one at a time with `json.JSONDecoder.raw_decode`
(the C scanner `json.load` uses) from a sliding window of the text, each handed to a callback and
dropped. So memory is the window (a few MB) plus what the callbacks keep.

Why not a streaming parser from PyPI (ijson, json-stream) or a fast one (orjson, simdjson):
iNat2021's README says latitude, longitude and location_uncertainty may be `nan`, which Python
writes as the bare literal NaN; those parsers reject it (ijson issue #33: "IncompleteJSONError:
lexical error: invalid char in json text") and the whole-document parsers hold the file at once.
Python's scanner accepts NaN, as TFDS's builders (json.load) do.
"""

import codecs
import hashlib
import json
import re

import tensorflow as tf

_BLOCK = 4 << 20  # bytes read at a time
_SPACE = re.compile(r"[ \t\n\r]*")


class MalformedJson(ValueError):
  """The file is not the JSON expected; the message names the line and column."""


class _Window:
  """The not yet consumed text of a file, read in blocks (md5 of every byte as it is read)."""

  def __init__(self, f, md5):
    self._file, self._md5 = f, md5
    self._decoder = codecs.getincrementaldecoder("utf-8")()
    self.text, self.pos, self.eof = "", 0, False
    self._dropped_lines, self._dropped_chars_on_line = 0, 0

  def more(self):
    """Reads another block; False at the end of the file."""
    if self.eof:
      return False
    block = self._file.read(_BLOCK)
    self._md5.update(block)
    self.eof = not block
    try:
      piece = self._decoder.decode(block, final=self.eof)
    except UnicodeDecodeError as e:
      raise MalformedJson(f"not UTF-8 text ({e}); is this the JSON file?") from None
    if self.pos > len(self.text) // 2:  # drop what was consumed, counting its lines for errors
      consumed = self.text[:self.pos]
      lines = consumed.count("\n")
      self._dropped_lines += lines
      self._dropped_chars_on_line = (len(consumed) - consumed.rfind("\n") - 1 if lines else
                                     self._dropped_chars_on_line + len(consumed))
      self.text, self.pos = self.text[self.pos:], 0
    self.text += piece
    return True

  def where(self, pos=None):
    """'line L column C' of a position in the window (1-based, in the whole file)."""
    pos = self.pos if pos is None else pos
    lines = self.text.count("\n", 0, pos)
    column = pos - self.text.rfind("\n", 0, pos) if lines else pos + 1 + (
        self._dropped_chars_on_line)
    return f"line {self._dropped_lines + lines + 1} column {column}"

  def skip_space(self):
    while True:
      self.pos = _SPACE.match(self.text, self.pos).end()
      if self.pos < len(self.text) or not self.more():
        return

  def peek(self):
    self.skip_space()
    return self.text[self.pos] if self.pos < len(self.text) else ""

  def expect(self, characters, what):
    found = self.peek()
    if not found or found not in characters:
      shown = repr(found) if found else "the end of the file"
      raise MalformedJson(f"malformed JSON at {self.where()}: expected {what}, found {shown}")
    self.pos += 1
    return found

  def value(self, decoder):
    """Decodes the JSON value that starts here (reading more text as it needs)."""
    self.skip_space()
    while True:
      try:
        value, end = decoder.raw_decode(self.text, self.pos)
      except json.JSONDecodeError as e:
        if not self.eof and self.more():
          continue  # the value runs past the window
        raise MalformedJson(f"malformed JSON at {self.where(e.pos)}: {e.msg}") from None
      if end == len(self.text) and not self.eof and self.more():
        continue  # a number or literal may go on in the next block
      self.pos = end
      return value


_NEXT = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")  # the separator after an element


def _stream_array(window, decoder, handle):
  """Hands each element of the array that starts here to `handle`.

  The loop calls the C scanner (`scan_once`, what raw_decode wraps) and one regular expression per
  element; the window is refilled only when an element or its separator runs past its end.
  """
  window.expect("[", "'['")
  if window.peek() == "]":
    window.pos += 1
    return
  scan_once = decoder.scan_once
  text, pos = window.text, window.pos
  while True:
    try:
      value, end = scan_once(text, pos)
      separator = _NEXT.match(text, end)
      whole = bool(separator) and (separator.end() < len(text) or window.eof)
    except (StopIteration, json.JSONDecodeError):
      whole = False
    if not whole:  # the window ends inside this element or its separator: read on, or fail
      window.pos = pos
      if window.more():
        text, pos = window.text, window.pos
        continue
      value = window.value(decoder)  # at the end of the file: raises with the exact position
      window.expect(",]", "',' or ']'")
      raise MalformedJson(f"malformed JSON at {window.where()}: the file ends inside an array")
    handle(value)
    if separator.group(1) == "]":
      window.pos = separator.end()
      return
    pos = separator.end()


def read(path, streamed, md5=None):
  """Reads the JSON file `path` (any tf.io.gfile path, or a binary file object, closed after).

  streamed: {top-level key: callback(element)}: the elements of those arrays are passed one at a
    time, in file order, and not kept. For a file whose top level is an array, the key is "".
  md5: a hashlib object updated with every byte of the file (default: a new md5).
  Returns (the top-level object without the streamed keys (None for a top-level array), md5 hex).
  Raises MalformedJson naming the line and column, or a streamed key that is not an array.
  """
  md5 = md5 or hashlib.md5()
  decoder = json.JSONDecoder()
  with (tf.io.gfile.GFile(path, "rb") if isinstance(path, str) else path) as f:
    window = _Window(f, md5)
    window.more()
    if window.peek() == "[" and "" in streamed:
      _stream_array(window, decoder, streamed[""])
      rest = None
    else:
      window.expect("{", "a JSON object")
      rest = {}
      if window.peek() == "}":
        window.pos += 1
      else:
        while True:
          window.skip_space()
          key = window.value(decoder)
          if not isinstance(key, str):
            raise MalformedJson(f"malformed JSON at {window.where()}: expected a key")
          window.expect(":", "':'")
          if key in streamed and window.peek() == "[":
            _stream_array(window, decoder, streamed[key])
            rest[key] = None  # present, streamed
          else:
            rest[key] = window.value(decoder)
          if window.expect(",}", "',' or '}'") == "}":
            break
    if window.peek():
      raise MalformedJson(f"malformed JSON at {window.where()}: extra data after the document")
    while window.more():  # hash the rest (only whitespace can be left)
      pass
  return rest, md5.hexdigest()
