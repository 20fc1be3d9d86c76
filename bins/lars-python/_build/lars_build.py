"""A PEP 517 build backend for the lars package, standard library only, so that `pip install`
works without network or setuptools. It builds a pure-Python wheel of ``lars/`` (and, if
``$LARS_BUNDLE_LIBRARY`` names a liblarsclient.so, bundles it next to the package: then the
``native`` backend needs no ``LARS_LIBRARY``; the wheel is still tagged ``py3-none-any``, so
only bundle for machines like the build machine).
"""

import base64
import hashlib
import os
import zipfile

NAME = "lars_client"
VERSION = "0.1.0"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "py3-none-any"


def _metadata() -> str:
    return (
        "Metadata-Version: 2.1\n"
        f"Name: lars-client\nVersion: {VERSION}\n"
        "Summary: The lars service-discovery client for Python\n"
        "Requires-Python: >=3.8\n"
    )


def _files():
    package = os.path.join(HERE, "lars")
    for name in sorted(os.listdir(package)):
        if name.endswith(".py") or name == "py.typed":
            with open(os.path.join(package, name), "rb") as f:
                yield f"lars/{name}", f.read()
    bundled = os.environ.get("LARS_BUNDLE_LIBRARY")
    if bundled:
        with open(bundled, "rb") as f:
            yield "lars/liblarsclient.so", f.read()


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _write_wheel(directory: str, files) -> str:
    dist_info = f"{NAME}-{VERSION}.dist-info"
    filename = f"{NAME}-{VERSION}-{TAG}.whl"
    files = list(files) + [
        (f"{dist_info}/METADATA", _metadata().encode()),
        (f"{dist_info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: lars_build\nRoot-Is-Purelib: true\nTag: {TAG}\n".encode()),
    ]
    record = [_record_line(path, data) for path, data in files] + [f"{dist_info}/RECORD,,"]
    with zipfile.ZipFile(os.path.join(directory, filename), "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files:
            wheel.writestr(path, data)
        wheel.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return filename


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = os.path.join(metadata_directory, f"{NAME}-{VERSION}.dist-info")
    os.makedirs(dist_info, exist_ok=True)
    with open(os.path.join(dist_info, "METADATA"), "w") as f:
        f.write(_metadata())
    return os.path.basename(dist_info)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, _files())


def get_requires_for_build_editable(config_settings=None):
    return []


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # An editable install is a .pth file that puts this folder on sys.path.
    return _write_wheel(wheel_directory, [(f"{NAME}.pth", (HERE + "\n").encode())])
