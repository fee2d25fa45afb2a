"""Stand-in for the get-pip.py script that `ansible-test` downloads to bootstrap pip into the
virtual environments of its sanity tests.

ansible-test fetches that script from a host outside the package registries; this one does
the same job from the package index pip is configured with: with uv when it is on PATH (the
project's virtualenv has it; about a second per environment), otherwise with what Python ships
(`ensurepip`, then the pinned pip), also when uv fails. `scripts/ansible-sanity.sh prime` puts it where
ansible-test looks for its cached copy.
Called as `python get_pip.py [pip options] pip==X.Y [--no-setuptools] [--no-wheel]`.
"""

import shutil
import subprocess
import sys

NOT_PIP_OPTIONS = ("--no-setuptools", "--no-wheel")
requested = [argument for argument in sys.argv[1:] if argument not in NOT_PIP_OPTIONS]
uv = shutil.which("uv")


# ansible-test runs this with a cleaned environment (no SSL_CERT_FILE): `--native-tls` makes
# uv trust the system's certificate store, as pip does through its configuration, which
# matters behind a proxy with its own certificate authority.
if not uv or subprocess.call([uv, "pip", "install", "--quiet", "--native-tls", "--python", sys.executable,
                               *[argument for argument in requested if not argument.startswith("-")]]) != 0:
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *requested])
