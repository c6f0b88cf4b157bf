"""Reading and rewriting a (generated) iNat download, to make the builder's bad-input corpus."""

import io
import json
import os
import shutil
import tarfile


def load_json(directory, name):
  with open(os.path.join(directory, name), encoding="utf-8") as f:
    return json.load(f)


def write_json(directory, name, document):
  with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
    json.dump(document, f)


def archive_members(path):
  """{name: bytes} of the regular files of a .tar.gz."""
  with tarfile.open(path, "r:gz") as tar:
    return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def write_archive(path, members, extra=()):
  """Writes {name: bytes} as a .tar.gz; `extra` is [(TarInfo, bytes or None)] appended raw."""
  with tarfile.open(path, "w:gz") as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
    for info, data in extra:
      tar.addfile(info, io.BytesIO(data) if data is not None else None)


def copy_download(source, destination):
  shutil.copytree(source, destination)
  return destination


def truncate_gzip(path, keep_fraction):
  """Cuts a .tar.gz short, as an interrupted download would."""
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(int(size * keep_fraction))

