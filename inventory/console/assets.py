"""GraphiQL's files, shipped in the package (``static/graphiql/``) so that ``serve --dev`` needs no CDN.

Pinned here: each npm package's version, the SHA-512 of its tarball (npm's ``integrity``) and, for each
file taken from it, the SHA-384 the page's ``integrity`` attributes carry (the browser refuses a file that
does not match). ``make assets`` (``python -m inventory.console.assets``) fetches the tarballs with
``npm pack`` from the npm registry, checks both hashes, and writes the files and each package's licence.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

DIRECTORY = Path(__file__).parent / "static" / "graphiql"


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    tarball: str
    """npm's integrity of the package's tarball (SHA-512)."""
    files: dict[str, str]
    """path in the tarball → the SHA-384 (subresource integrity) of that file."""
    licence: str | None = "package/LICENSE"
    """The licence file in the tarball (None: the package ships none; ``LICENCE_OF`` says whose it is)."""


ASSETS = (
    Asset("react", "18.2.0",
          "sha512-/3IjMdb2L9QbBdWiW5e3P2/npwMBaU9mHCSCUzNln0ZCYbcfTsGbTJrU/kGemdH2IWmB2ioZ+zkxtmq6g09fGQ==",
          {"package/umd/react.production.min.js":
           "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8"}),
    Asset("react-dom", "18.2.0",
          "sha512-6IMTriUmvsjHUjNtEDudZfuDQUoWXVxKHhlEGSk81n4YFS+r/Kl99wXiwlVXtPBtJenozv2P+hxDsw9eA7Xo6g==",
          {"package/umd/react-dom.production.min.js":
           "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh"}),
    Asset("graphiql", "3.8.3",
          "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
          {"package/graphiql.min.js": "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
           "package/graphiql.min.css": "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM"}),
    Asset("@graphiql/plugin-explorer", "1.0.2",
          "sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q==",
          {"package/dist/index.umd.js": "sha384-2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9",
           "package/dist/style.css": "sha384-5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi"},
          licence=None),
)  # fmt: skip
LICENCE_OF = {"@graphiql/plugin-explorer": "graphiql"}
"""A package whose tarball has no licence file → the package of its repository whose licence it is under
(``@graphiql/plugin-explorer`` is MIT, per its package.json, from the graphql/graphiql repository)."""


def local_name(asset: Asset, path: str) -> str:
    """The file's name in ``static/graphiql/``: the package's name, then the file's
    (``graphiql-plugin-explorer-index.umd.js``)."""
    return f"{asset.package.lstrip('@').replace('/', '-')}-{path.rsplit('/', 1)[1]}"


def licence_name(asset: Asset) -> str:
    return f"{asset.package.lstrip('@').replace('/', '-')}-{asset.version}.LICENSE"


def sri(data: bytes, algorithm: str = "sha384") -> str:
    """A subresource-integrity hash: ``sha384-<base64>``."""
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def refresh(directory: Path = DIRECTORY) -> None:
    """Fetch every pinned package with ``npm pack``, check it, and write its files and licence."""
    directory.mkdir(parents=True, exist_ok=True)
    licences: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for asset in ASSETS:
            spec = f"{asset.package}@{asset.version}"
            subprocess.run(["npm", "pack", "--silent", spec], cwd=scratch, check=True, stdout=subprocess.DEVNULL)
            tarball = Path(scratch) / f"{asset.package.lstrip('@').replace('/', '-')}-{asset.version}.tgz"
            if sri(tarball.read_bytes(), "sha512") != asset.tarball:
                raise SystemExit(f"{spec}: the tarball's SHA-512 is not the pinned one")
            with tarfile.open(tarball) as archive:
                for path, expected in asset.files.items():
                    data = _member(archive, path)
                    if sri(data) != expected:
                        raise SystemExit(f"{spec}: {path}'s SHA-384 is not the pinned one")
                    (directory / local_name(asset, path)).write_bytes(data)
                if asset.licence is not None:
                    licences[asset.package] = _member(archive, asset.licence)
    for asset in ASSETS:
        text = licences[LICENCE_OF.get(asset.package, asset.package)]
        note = b""
        if asset.package in LICENCE_OF:
            origin = LICENCE_OF[asset.package]
            note = (f"{asset.package} {asset.version} ships no licence file; its package.json says MIT, and it "
                    f"comes from the repository of {origin}, whose licence follows.\n\n").encode()  # fmt: skip
        (directory / licence_name(asset)).write_bytes(note + text)
    print(f"GraphiQL assets written to {directory}")


def _member(archive: tarfile.TarFile, path: str) -> bytes:
    member = archive.extractfile(path)
    if member is None:
        raise SystemExit(f"{path}: not a file in the tarball")
    return member.read()


if __name__ == "__main__":
    refresh(Path(sys.argv[1]) if len(sys.argv) > 1 else DIRECTORY)
