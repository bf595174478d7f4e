"""`uota publish DIST s3://BUCKET/PREFIX`: a release folder goes up to a real S3-compatible
store (SeaweedFS on 127.0.0.1, `s3_store` in support/fixtures_s3.py), every archive before
`latest`, with the headers docs/hosting.md prescribes, never replacing an archive; then real
devices update from the bucket over plain HTTP, a cut download resuming with Range, and by a
delta release.

Uploads run in this process, where a boto3 event hook records each PutObject request as it
is sent (`publisher.puts`): that is how the order and the ACL are seen. What devices and
anonymous clients get is read over plain HTTP, without boto3.
"""

import http.client
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support.fault_proxy import FaultsOnce, drop_after, fetch_response, head_length
from support.fixtures_s3 import aws_env
from support.fixtures_servers import free_port, run_uota, uota_command_env
from support.releases import listed_files, write_tree
from support.standard import NEW, expected_after_update, make_device

from uota import __main__ as cli
from uota.build import build_release
from uota.sign import keygen

PREFIX = "app"
HOSTING = (Path(__file__).resolve().parent.parent / "docs" / "hosting.md").read_text()


def docs_bucket_policy(bucket, prefix):
    """The bucket policy docs/hosting.md shows, for this bucket and prefix."""
    section = HOSTING.split("## S3-compatible object storage", 1)[1]
    policy = re.search(r"```json\n(.*?)\n\s*```", section, re.S).group(1)
    return policy.replace("arn:aws:s3:::my-updates/app/*", "arn:aws:s3:::{}/{}/*".format(bucket, prefix))


def build(dist, tmp_path, version, files=NEW, name=None):
    """`uota build` of files as version into dist; returns its Release."""
    source = write_tree(tmp_path / "src-{}-{}".format(Path(dist).name, version), files)
    return build_release(source, version, dist, name=name)


def anonymous_get(url):
    """(status, headers, body) of a plain GET without credentials, as a device sends it."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


class Publisher:
    """`uota publish DIST s3://BUCKET/app --endpoint-url STORE` run in this process with the
    store's credentials; `puts` lists (object name, request headers) of each PutObject, in
    the order they were sent."""

    def __init__(self, store, monkeypatch, capsys):
        import boto3

        self.store, self.capsys, self.puts = store, capsys, []
        for name, value in store.env.items():
            monkeypatch.setenv(name, value)
        session = boto3.session.Session()  # the one `boto3.client` uses: its clients inherit the hook
        session.events.register("before-send.s3.PutObject", self._record)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)

    def _record(self, request, **_):
        headers = {name.lower(): value.decode() if isinstance(value, bytes) else value
                   for name, value in request.headers.items()}  # signed ones are bytes
        self.puts.append((request.url.rsplit("/", 1)[1], headers))

    def __call__(self, dist, bucket, *options):
        """(exit status, stdout lines, stderr) of one publish."""
        status = cli.main(["publish", str(dist), "s3://{}/{}".format(bucket, PREFIX),
                           "--endpoint-url", self.store.endpoint, *options])
        output = self.capsys.readouterr()
        return status, output.out.splitlines(), output.err

    def uploaded(self):
        return [name for name, _ in self.puts]


@pytest.fixture
def publisher(s3_store, monkeypatch, capsys):
    return Publisher(s3_store, monkeypatch, capsys)


@pytest.fixture
def bucket(s3_store):
    return s3_store.new_bucket()


@pytest.fixture
def open_bucket(s3_store, bucket):
    """A bucket whose app/ prefix anyone may read, through docs/hosting.md's bucket policy."""
    s3_store.client().put_bucket_policy(Bucket=bucket, Policy=docs_bucket_policy(bucket, PREFIX))
    return bucket


def object_url(store, bucket, name):
    return "{}/{}/{}/{}".format(store.endpoint, bucket, PREFIX, name)


def stored(store, bucket, name):
    return store.client().get_object(Bucket=bucket, Key="{}/{}".format(PREFIX, name))["Body"].read()


def test_every_archive_goes_up_before_latest(tmp_path, publisher, bucket):
    dist = tmp_path / "dist"
    build(dist, tmp_path, "1.0.0")
    build(dist, tmp_path, "1.1.0", name="update-1.1.0.tar.gz")  # sorts after "latest"

    status, lines, _ = publisher(dist, bucket)

    assert status == 0
    assert publisher.uploaded() == ["firmware-1.0.0.tar.gz", "update-1.1.0.tar.gz", "latest"]
    assert lines == ["uploaded s3://{}/app/{} ({} bytes)".format(bucket, path.name, path.stat().st_size)
                     for path in (dist / "firmware-1.0.0.tar.gz", dist / "update-1.1.0.tar.gz", dist / "latest")]


def test_hidden_files_stay_behind(tmp_path, publisher, bucket):
    dist = tmp_path / "dist"
    build(dist, tmp_path, "1.1.0")
    (dist / ".latest.k2j1.tmp").write_text("what an interrupted build leaves")

    assert publisher(dist, bucket)[0] == 0

    assert publisher.uploaded() == ["firmware-1.1.0.tar.gz", "latest"]


def test_a_private_key_in_the_folder_stops_the_publish(tmp_path, publisher, bucket):
    dist = tmp_path / "dist"
    build(dist, tmp_path, "1.1.0")
    private, _ = keygen(dist / "signing-key", bits=2048)

    status, _, error = publisher(dist, bucket)

    assert status == 1
    assert error == "uota: {} holds a private key: move it out of {} (only the public key goes to devices, " \
                    "inside a release). Nothing was uploaded.\n".format(private, dist)
    assert publisher.uploaded() == []


def test_objects_are_served_with_the_headers_hosting_md_prescribes(tmp_path, s3_store, publisher, open_bucket):
    dist = tmp_path / "dist"
    release = build(dist, tmp_path, "1.1.0")
    assert publisher(dist, open_bucket)[0] == 0

    status, headers, body = anonymous_get(object_url(s3_store, open_bucket, "latest"))
    assert (status, body) == (200, (dist / "latest").read_bytes())
    assert headers["Content-Type"].split(";")[0] == "text/plain"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["Content-Encoding"] is None

    status, headers, body = anonymous_get(object_url(s3_store, open_bucket, release.archive_path.name))
    assert (status, body) == (200, release.archive_path.read_bytes())
    assert headers["Content-Type"] == "application/gzip"
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers["Content-Encoding"] is None


def test_an_identical_archive_is_not_uploaded_again(tmp_path, publisher, bucket):
    dist = tmp_path / "dist"
    release = build(dist, tmp_path, "1.1.0")
    publisher(dist, bucket)
    publisher.puts.clear()

    status, lines, _ = publisher(dist, bucket)

    assert status == 0
    assert publisher.uploaded() == ["latest"]
    assert lines[0] == "already there s3://{}/app/{} ({} bytes)".format(
        bucket, release.archive_path.name, release.archive_path.stat().st_size)
    assert lines[1].startswith("uploaded s3://{}/app/latest ".format(bucket))


def test_an_archive_another_tool_uploaded_counts_as_identical_by_its_md5(tmp_path, s3_store, publisher, bucket):
    dist = tmp_path / "dist"
    release = build(dist, tmp_path, "1.1.0")
    s3_store.client().put_object(Bucket=bucket, Key="app/" + release.archive_path.name,
                                 Body=release.archive_path.read_bytes())  # no uota metadata: its ETag is the MD5

    status, lines, _ = publisher(dist, bucket)

    assert status == 0
    assert publisher.uploaded() == ["latest"]
    assert lines[0].startswith("already there ")


def test_other_bytes_under_a_published_archive_name_stop_the_publish(tmp_path, s3_store, publisher, bucket):
    first, second = tmp_path / "first", tmp_path / "second"
    release = build(first, tmp_path, "1.1.0")
    build(second, tmp_path, "1.1.0", files=dict(NEW, **{"main.py": "print('changed')\n"}))
    publisher(first, bucket)
    publisher.puts.clear()

    status, lines, error = publisher(second, bucket)

    assert status == 1
    assert error == ("uota: s3://{}/app/firmware-1.1.0.tar.gz already holds other bytes: a published archive's "
                     "name never gets new content (devices and caches may hold the old bytes under it); build "
                     "the release as a new version. Nothing was uploaded.\n".format(bucket))
    assert (publisher.puts, lines) == ([], [])
    assert stored(s3_store, bucket, "latest") == (first / "latest").read_bytes()
    assert stored(s3_store, bucket, "firmware-1.1.0.tar.gz") == release.archive_path.read_bytes()


def test_older_archives_stay_when_a_newer_release_is_published(tmp_path, s3_store, publisher, bucket):
    old_dist, new_dist = tmp_path / "old", tmp_path / "new"
    build(old_dist, tmp_path, "1.0.0")
    build(new_dist, tmp_path, "1.1.0")  # a folder without the old archive: nothing says to keep it
    publisher(old_dist, bucket)

    assert publisher(new_dist, bucket)[0] == 0

    listing = s3_store.client().list_objects_v2(Bucket=bucket, Prefix="app/")["Contents"]
    assert sorted(entry["Key"] for entry in listing) == [
        "app/firmware-1.0.0.tar.gz", "app/firmware-1.1.0.tar.gz", "app/latest"]
    assert stored(s3_store, bucket, "latest") == (new_dist / "latest").read_bytes()


def test_public_sends_the_public_read_acl_with_every_object(tmp_path, publisher, bucket):
    dist = tmp_path / "dist"
    build(dist, tmp_path, "1.1.0")

    assert publisher(dist, bucket, "--public")[0] == 0

    assert [(name, headers.get("x-amz-acl")) for name, headers in publisher.puts] == [
        ("firmware-1.1.0.tar.gz", "public-read"), ("latest", "public-read")]


def test_without_public_or_a_policy_nothing_is_readable_anonymously(tmp_path, s3_store, publisher, bucket):
    dist = tmp_path / "dist"
    release = build(dist, tmp_path, "1.1.0")

    assert publisher(dist, bucket)[0] == 0

    assert [headers.get("x-amz-acl") for _, headers in publisher.puts] == [None, None]
    for name in ("latest", release.archive_path.name):
        assert anonymous_get(object_url(s3_store, bucket, name))[0] == 403


def test_a_dry_run_says_what_would_go_up_and_uploads_nothing(tmp_path, s3_store, publisher, bucket):
    dist = tmp_path / "dist"
    release = build(dist, tmp_path, "1.1.0")

    status, lines, _ = publisher(dist, bucket, "--dry-run")

    assert status == 0
    assert lines == ["would upload s3://{}/app/{} ({} bytes)".format(bucket, path.name, path.stat().st_size)
                     for path in (release.archive_path, dist / "latest")]
    assert publisher.puts == []
    assert s3_store.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("problem, expected", [
    ("no such bucket", "uota: no bucket 'no-such-bucket' at {endpoint}\n"),
    ("wrong secret key", "uota: {endpoint} denied access to bucket '{bucket}' (403): check the credentials "
                         "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and what they may do\n"),
    ("nothing listening", "uota: cannot reach {endpoint}: Could not connect to the endpoint URL: "
                          "\"{endpoint}/{bucket}\"\n"),
], ids=["no-bucket", "wrong-secret", "unreachable"])
def test_a_store_that_fails_is_one_line_and_status_1(tmp_path, s3_store, bucket, problem, expected):
    dist = tmp_path / "dist"
    build(dist, tmp_path, "1.1.0")
    endpoint, env = s3_store.endpoint, s3_store.env
    if problem == "no such bucket":
        bucket = "no-such-bucket"
    elif problem == "wrong secret key":
        env = aws_env(secret_key="not-the-secret")
    else:
        endpoint = "http://127.0.0.1:{}".format(free_port())

    result = run_uota("publish", dist, "s3://{}/app".format(bucket), "--endpoint-url", endpoint, env=env)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == expected.format(endpoint=endpoint, bucket=bucket)


def test_without_boto3_it_says_how_to_install_it(tmp_path):
    dist = tmp_path / "dist"
    build(dist, tmp_path, "1.1.0")
    without_boto3 = ("import sys; sys.modules['boto3'] = None; "  # `import boto3` fails, as when not installed
                     "from uota.__main__ import main; sys.exit(main(sys.argv[1:]))")

    result = subprocess.run([sys.executable, "-c", without_boto3, "publish", str(dist), "s3://updates/app"],
                            env=uota_command_env(), capture_output=True, text=True, timeout=60)

    assert (result.returncode, result.stderr) == (1, "uota: uota publish needs boto3 for s3:// urls: "
                                                     "pip install 'uota[s3]'\n")


def test_a_folder_without_latest_is_refused(tmp_path):
    dist = tmp_path / "dist"
    build(dist, tmp_path, "1.1.0")
    (dist / "latest").unlink()

    result = run_uota("publish", dist, "s3://updates/app")

    assert (result.returncode, result.stderr) == (
        1, "uota: {} has no latest file: build the release first (uota build)\n".format(dist))


def test_a_latest_naming_an_archive_not_in_the_folder_is_refused(tmp_path):
    dist = tmp_path / "dist"
    release = build(dist, tmp_path, "1.1.0")
    release.archive_path.unlink()

    result = run_uota("publish", dist, "s3://updates/app")

    assert (result.returncode, result.stderr) == (
        1, "uota: {} names firmware-1.1.0.tar.gz, which is not in {}\n".format(dist / "latest", dist))


def test_an_archive_that_does_not_match_latest_is_refused(tmp_path):
    dist = tmp_path / "dist"
    release = build(dist, tmp_path, "1.1.0")
    release.archive_path.write_bytes(release.archive_path.read_bytes() + b"\0")

    result = run_uota("publish", dist, "s3://updates/app")

    assert (result.returncode, result.stderr) == (1, "uota: {} does not match the SHA-256 in {}: rebuild the "
                                                     "release\n".format(release.archive_path, dist / "latest"))


def updated(before, release):
    """The files of a device that was `before` once it installed the build of NEW `release`."""
    return dict(expected_after_update(before, NEW), **{"uota.files": listed_files(release.archive_path)})


def test_a_device_updates_from_the_bucket_over_http(runtime, tmp_path, s3_store, publisher, open_bucket):
    dist = tmp_path / "dist"
    release = build(dist, tmp_path, "1.1.0")
    assert publisher(dist, open_bucket)[0] == 0
    device = make_device(runtime, tmp_path, object_url(s3_store, open_bucket, ""))
    before = device.files()

    result, log = device.update()

    assert result == "True True", log
    assert device.files() == updated(before, release)


CHECK_TWICE = """
first = uota.check_for_updates()
second = uota.check_for_updates()
print(first, second, second and uota.install_new_firmware())
"""


def test_a_cut_download_resumes_from_the_bucket_with_a_range_request(runtime, tmp_path, s3_store, publisher,
                                                                     open_bucket, fault_proxy):
    dist = tmp_path / "dist"
    release = build(dist, tmp_path, "1.1.0")
    assert publisher(dist, open_bucket)[0] == 0
    archive_path = urlsplit(object_url(s3_store, open_bucket, release.archive_path.name)).path
    response = fetch_response(s3_store.endpoint + "/", archive_path)
    kept = (len(response) - head_length(response)) // 2  # the first download gets half the archive
    proxy = fault_proxy(s3_store.endpoint + "/")
    proxy.faults = FaultsOnce({archive_path: drop_after(head_length(response) + kept)})
    device = make_device(runtime, tmp_path, "{}{}/{}/".format(proxy.url, open_bucket, PREFIX))
    before = device.files()

    result, log = device.call(CHECK_TWICE)

    assert result == "False True True", log
    archive_heads = [head for head in proxy.requests if head.startswith("GET " + archive_path + " ")]
    assert [re.findall(r"(?im)^range: *(.*?)\r$", head) for head in archive_heads] == [[], ["bytes={}-".format(kept)]]
    assert [status for request, status in proxy.answers if request.startswith("GET " + archive_path + " ")] == [
        "HTTP/1.1 200 OK", "HTTP/1.1 206 Partial Content"]
    assert device.files() == updated(before, release)


def test_deltas_and_their_index_go_up_after_the_archives_and_before_latest(tmp_path, publisher, bucket):
    dist = tmp_path / "dist"
    old = build(dist, tmp_path, "1.1.0")
    new = build_release(write_tree(tmp_path / "src-1.2.0", dict(NEW, **{"main.py": "print('1.2.0')\n"})),
                        "1.2.0", dist, delta_from=[old.archive_path])

    assert publisher(dist, bucket)[0] == 0

    assert publisher.uploaded() == ["firmware-1.1.0.tar.gz", "firmware-1.2.0-from-1.1.0.tar.gz",
                                    "firmware-1.2.0.tar.gz", "firmware-1.2.0.tar.gz.deltas", "latest"]
    index_put = dict(publisher.puts)["firmware-1.2.0.tar.gz.deltas"]
    assert (index_put["content-type"].split(";")[0], index_put["cache-control"]) == ("text/plain", "no-cache")
    assert new.deltas[0].path.name in publisher.uploaded()


def test_a_device_takes_a_delta_from_the_bucket(runtime, tmp_path, s3_store, publisher, open_bucket):
    dist = tmp_path / "dist"
    old = build(dist, tmp_path, "1.1.0")
    assert publisher(dist, open_bucket)[0] == 0
    device = make_device(runtime, tmp_path, object_url(s3_store, open_bucket, ""))
    assert device.update()[0] == "True True"
    newer = dict(NEW, **{"main.py": "print('1.2.0')\n"})
    new = build_release(write_tree(tmp_path / "src-1.2.0", newer), "1.2.0", dist, delta_from=[old.archive_path])
    assert publisher(dist, open_bucket)[0] == 0
    before = device.files()

    result, log = device.update()

    assert result == "True True", log
    assert "new version 1.2.0 is available as a delta" in log
    assert device.files() == dict(before, **{"main.py": b"print('1.2.0')\n", "version": b"1.2.0",
                                             "uota.files": listed_files(new.archive_path)})
