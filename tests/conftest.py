import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests import their helpers (hf_models) directly

SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture(scope="session", autouse=True)
def offline_corpus_cache(tmp_path_factory):
    """Tests never download: the cache is a temp dir seeded with the shared copy of TinyShakespeare
    (or $GLASSFORMER_TINYSHAKESPEARE when set)."""
    cache = tmp_path_factory.mktemp("glassformer-cache")
    os.environ["GLASSFORMER_CACHE"] = str(cache)
    os.environ["GLASSFORMER_OFFLINE"] = "1"
    source = os.environ.get("GLASSFORMER_TINYSHAKESPEARE") or SHARED_CORPUS
    if Path(source).is_file():
        shutil.copy(source, cache / "tinyshakespeare.txt")
    os.environ.pop("GLASSFORMER_TINYSHAKESPEARE", None)
    yield cache
