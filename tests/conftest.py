"""Shared fixtures: one generated mini download per test session (seconds to make)."""

import pytest

from inat_tf import sample_download


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
  """The default sample download: 40 species, ~2,500 images at most 128 px."""
  path = tmp_path_factory.mktemp("sample_download")
  sample_download.make_sample(str(path), sample_download.SampleConfig())
  return path

