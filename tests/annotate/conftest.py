import io
import tarfile

import numpy as np
import pytest
from PIL import Image

skdata = pytest.importorskip("skimage.data")


def encode(im: Image.Image | np.ndarray, fmt: str, **kw) -> bytes:
    if isinstance(im, np.ndarray):
        im = Image.fromarray(im)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled sample photos (offline): RGB uint8."""
    return {"astronaut": skdata.astronaut(), "chelsea": skdata.chelsea(), "coffee": skdata.coffee(),
            "motorcycle": skdata.stereo_motorcycle()[0]}


@pytest.fixture(scope="session")
def u2netp():
    from annotate import labelers

    return labelers.get("u2netp")


def write_tar(path, members) -> None:
    """A tar of (name, bytes) members, names as given (unsafe ones included: the tests need them)."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
