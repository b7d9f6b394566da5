import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests import their helpers (hf_models) directly


@pytest.fixture(scope="session", autouse=True)
def offline_cache(tmp_path_factory):
    """Tests never download: TinyShakespeare comes from the copy inside the package, and the
    download cache is an empty temp dir with downloading switched off."""
    cache = tmp_path_factory.mktemp("glassformer-cache")
    os.environ["GLASSFORMER_CACHE"] = str(cache)
    os.environ["GLASSFORMER_OFFLINE"] = "1"
    os.environ.pop("GLASSFORMER_TINYSHAKESPEARE", None)
    yield cache
