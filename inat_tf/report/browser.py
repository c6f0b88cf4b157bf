"""Opens a page in headless Chromium and reports what a person's browser would: console errors,
uncaught exceptions, failed loads, every network request, the load time, and a screenshot.

  result = browser.open_page("runs/q/eval/report.html", screenshot="page.png")
  result.errors, result.requests, result.load_seconds

Talks the Chrome DevTools Protocol (https://chromedevtools.github.io/devtools-protocol/) over
--remote-debugging-pipe: Chromium reads JSON commands from file descriptor 3 and writes replies
and events to 4, each message ending in a NUL byte. That needs no websocket client and no port,
and unlike parsing --enable-logging output it reports exceptions and console.error with their
text and source. Used by the report tests and benchmarks/report_page.py; needs Chromium
(Debian: `apt-get install chromium`). The flags are those a root user in a container with no
network needs (no sandbox, no GPU, nothing fetched in the background, a fresh profile).
"""

import base64
import dataclasses
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-pipe")


class BrowserError(RuntimeError):
  """Chromium is missing, did not start, or stopped answering; the message says which."""


def find_chromium():
  """The path of a Chromium (or Chrome) executable, or None."""
  for name in CANDIDATES:
    path = shutil.which(name)
    if path:
      return path
  return None


@dataclasses.dataclass
class PageResult:
  """errors: console errors, uncaught exceptions and failed loads, one line each; requests: every
  URL the page asked for; load_seconds: navigation start to the load event; script: the value of
  the `evaluate` expression, if one was given."""
  errors: list
  requests: list
  load_seconds: float
  script: object = None


class _Pipe:
  """One DevTools connection: commands out on one pipe, replies and events in on the other."""

  def __init__(self, to_browser, from_browser, timeout):
    self._out, self._in = to_browser, from_browser
    self._buffer, self._next_id, self.events = b"", 0, []
    self._deadline = time.monotonic() + timeout

  def send(self, method, params=None, session=None):
    self._next_id += 1
    message = {"id": self._next_id, "method": method, "params": params or {}}
    if session:
      message["sessionId"] = session
    try:
      self._out.write(json.dumps(message).encode() + b"\0")
      self._out.flush()
    except BrokenPipeError:
      raise BrowserError("Chromium closed the DevTools pipe (it exited)") from None
    return self._next_id

  def wait(self, predicate):
    """Reads messages until one satisfies predicate; every event read is kept in self.events."""
    while True:
      while b"\0" in self._buffer:
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        self.events.append(message)
        if predicate(message):
          return message
      left = self._deadline - time.monotonic()
      if left <= 0 or not select.select([self._in], [], [], left)[0]:
        raise BrowserError("Chromium did not answer in time")
      chunk = os.read(self._in.fileno(), 1 << 20)
      if not chunk:
        raise BrowserError("Chromium closed the DevTools pipe (it exited)")
      self._buffer += chunk

  def call(self, method, params=None, session=None):
    number = self.send(method, params, session)
    reply = self.wait(lambda m: m.get("id") == number)
    if "error" in reply:
      raise BrowserError(f"{method}: {reply['error']}")
    return reply.get("result", {})


def _errors(events):
  lines = []
  for event in events:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
      details = params["exceptionDetails"]
      lines.append("uncaught " + details.get("exception", {}).get("description", details["text"]))
    elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
      lines.append("console." + params["type"] + ": " + " ".join(
          str(a.get("value", a.get("description", ""))) for a in params["args"]))
    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
      entry = params["entry"]
      lines.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}".rstrip())
  return lines


def open_page(path, *, screenshot="", width=1280, height=900, full_page=False, evaluate="",
              timeout=60, executable=None):
  """Loads a local HTML file and returns a PageResult; writes a PNG screenshot if asked.

  full_page: the screenshot covers the whole page, not just the first width x height pixels.
  evaluate: a JavaScript expression run after the load event (its value in PageResult.script).
  Raises BrowserError when no Chromium is found or it fails.
  """
  executable = executable or find_chromium()
  if executable is None:
    raise BrowserError("no Chromium found (tried " + ", ".join(CANDIDATES) +
                       "); on Debian: apt-get install chromium")
  url = "file://" + os.path.abspath(path)
  profile = tempfile.mkdtemp(prefix="inat-chromium-")
  to_read, to_browser = os.pipe()      # Chromium reads fd 3
  from_browser, to_write = os.pipe()   # Chromium writes fd 4

  def descriptors():  # in the child: the pipe ends become fds 3 and 4, inheritable
    # Copies above 9 first, so that neither copy is already 3 or 4: dup2 onto the same fd is a
    # no-op that would leave close-on-exec set (the pipe would vanish at exec).
    high_read = fcntl.fcntl(to_read, fcntl.F_DUPFD, 10)
    high_write = fcntl.fcntl(to_write, fcntl.F_DUPFD, 10)
    os.dup2(high_read, 3)
    os.dup2(high_write, 4)

  log = open(os.path.join(profile, "chromium.log"), "w+")  # pylint: disable=consider-using-with
  process = subprocess.Popen(
      [executable, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
       "about:blank"], preexec_fn=descriptors, close_fds=False, stdin=subprocess.DEVNULL,
      stdout=log, stderr=log)
  os.close(to_read)
  os.close(to_write)
  pipe = _Pipe(os.fdopen(to_browser, "wb"), os.fdopen(from_browser, "rb"), timeout)
  try:
    target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.call("Target.attachToTarget", {"targetId": target,
                                                  "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Page", "Network"):
      pipe.call(f"{domain}.enable", session=session)
    pipe.call("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        session=session)
    start = time.monotonic()
    pipe.call("Page.navigate", {"url": url}, session=session)
    pipe.wait(lambda m: m.get("method") == "Page.loadEventFired")
    load_seconds = time.monotonic() - start
    value = None
    if evaluate:
      value = pipe.call("Runtime.evaluate", {"expression": evaluate, "returnByValue": True},
                        session=session)["result"].get("value")
    if screenshot:
      params = {"format": "png"}
      if full_page:
        size = pipe.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        params.update(captureBeyondViewport=True, clip={
            "x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1})
      data = pipe.call("Page.captureScreenshot", params, session=session)["data"]
      with open(screenshot, "wb") as f:
        f.write(base64.b64decode(data))
    # Events that arrived while the above ran are in pipe.events already.
    requests = [e["params"]["request"]["url"] for e in pipe.events
                if e.get("method") == "Network.requestWillBeSent"]
    return PageResult(_errors(pipe.events), requests, load_seconds, value)
  except BrowserError as e:
    log.seek(0)
    tail = log.read()[-2000:].strip()
    raise BrowserError(f"{e}; {executable} said: {tail or 'nothing'}") from None
  finally:
    try:
      pipe.send("Browser.close")
      process.wait(timeout=10)
    except (OSError, BrowserError, subprocess.TimeoutExpired):
      process.kill()
      process.wait()
    log.close()
    shutil.rmtree(profile, ignore_errors=True)
