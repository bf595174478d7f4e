"""`uota publish`: upload a release folder to S3-compatible object storage.

    uota publish DIST s3://BUCKET[/PREFIX] [--endpoint-url URL] [--public] [--dry-run]

What goes up, in this order: every file of DIST other than `latest` and the indexes
of deltas (the archives and deltas; `uota build` keeps the older ones there too), then
the indexes of deltas (``NAME.deltas``), then `latest`, so that a device never reads a
`latest` or an index naming an archive that is not there yet. Hidden files (the
temporaries of an interrupted `uota build`) stay behind. Before anything is sent,
DIST must hold a `latest` the device's parser accepts and the archive it names, with
the SHA-256 it gives, and no private key (a signing key left in DIST would be public).

Each object gets the Content-Type and Cache-Control of docs/hosting.md: `latest` and
the indexes text/plain and ``no-cache`` (they change under the same name: every cache
revalidates them), every other file its `uota serve` type and ``public,
max-age=31536000, immutable`` (an archive's name never changes its content).

Archives are immutable on the store too. Each upload records the file's SHA-256 as
the object's metadata ``uota-sha256``; an archive already there with the same bytes
is not sent again (an object without that record, put there by another tool, matches
when its ETag is the file's MD5, as a single-part upload's is), and one with other
bytes under the same name stops the publish before anything is uploaded: devices and
caches may already hold the old bytes under that name. `latest` and the indexes are
always uploaded.
Nothing is ever deleted, so older archives stay for devices that read the previous
`latest` just before the switch.

boto3 (``pip install 'uota[s3]'``) is imported here only, when a publish runs; it
finds credentials as the AWS CLI does (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
AWS_PROFILE, ~/.aws). Errors of the store become one-line `CommandError`s.
"""

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .build import LATEST_FILE
from .device.uota import _core, _latest
from .errors import CommandError
from .serve import content_type, revalidated

ARCHIVE_CACHE_CONTROL = "public, max-age=31536000, immutable"
REVALIDATED_CACHE_CONTROL = "no-cache"  # latest and the indexes of deltas
SHA256_METADATA = "uota-sha256"  # sent as x-amz-meta-uota-sha256
_CHUNK = 64 * 1024
_PRIVATE_KEY = b"PRIVATE KEY-----"  # the PEM header of any private key (uota keygen writes one)
_NOT_FOUND = ("404", "NoSuchKey", "NotFound")
_DENIED = ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken")


@dataclass(frozen=True)
class ReleaseFile:
    path: Path
    size: int
    sha256: str
    md5: str  # what a single-part upload's ETag is

    @classmethod
    def read(cls, path):
        sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        with open(path, "rb") as release_file:
            for block in iter(lambda: release_file.read(_CHUNK), b""):
                if not size and _PRIVATE_KEY in block:  # a PEM file starts with its header
                    raise CommandError("{} holds a private key: move it out of {} (only the public key goes "
                                       "to devices, inside a release). Nothing was uploaded.".format(path, path.parent))
                sha256.update(block)
                md5.update(block)
                size += len(block)
        return cls(path, size, sha256.hexdigest(), md5.hexdigest())


def parse_s3_url(url):
    """(bucket, key prefix ending in / or empty) of ``s3://BUCKET[/PREFIX]``."""
    scheme, _, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    if scheme != "s3" or not bucket:
        raise CommandError("{!r} is not an s3://BUCKET/PREFIX url".format(url))
    prefix = prefix.strip("/")
    return bucket, prefix + "/" if prefix else ""


def release_files(dist):
    """The files of the release folder `dist` to upload, in order: the archives, then the
    files that change under their name (`serve.revalidated`), `latest` last.

    Raises:
        CommandError: no such folder, no `latest` or one a device refuses, or the archive
            it names is missing or has another SHA-256.
    """
    dist = Path(dist)
    if not dist.is_dir():
        raise CommandError("release folder {} does not exist or is not a folder".format(dist))
    latest_path = dist / LATEST_FILE
    if not latest_path.is_file():
        raise CommandError("{} has no {} file: build the release first (uota build)".format(dist, LATEST_FILE))
    try:
        _, archive_name, _, sha256, _, _ = _latest.parse_latest(latest_path.read_text())
    except (OSError, UnicodeDecodeError, _core.VerifyError) as error:
        raise CommandError("cannot read {}: {}".format(latest_path, error))
    archive_path = dist / archive_name
    if not archive_path.is_file():
        raise CommandError("{} names {}, which is not in {}".format(latest_path, archive_name, dist))
    others = sorted((revalidated(path), path.name) for path in dist.iterdir()
                    if path.is_file() and path.name != LATEST_FILE and not path.name.startswith("."))
    files = [ReleaseFile.read(dist / name) for _, name in others] + [ReleaseFile.read(latest_path)]
    if sha256 and next(file for file in files if file.path == archive_path).sha256 != sha256:
        raise CommandError("{} does not match the SHA-256 in {}: rebuild the release".format(archive_path, latest_path))
    return files


def publish_release(dist, url, endpoint_url=None, public=False, dry_run=False):
    """Upload the release folder `dist` to `url` (``s3://BUCKET/PREFIX``) as the module
    docstring says. Yields (what, object url, size) for each object once it is done, what
    being "uploaded", "already there" or, with `dry_run`, "would upload".

    `endpoint_url`: an S3-compatible store's (path-style requests); default AWS S3.
    `public`: give each uploaded object the canned ACL public-read.
    """
    bucket, prefix = parse_s3_url(url)
    files = release_files(dist)
    archives = [release_file for release_file in files if not revalidated(release_file.path)]
    boto3, Config = _import_boto3()
    where = endpoint_url or "AWS S3"
    with _store_errors(bucket, where):
        try:
            client = boto3.client("s3", endpoint_url=endpoint_url, config=Config(
                connect_timeout=10, read_timeout=60, retries={"mode": "standard", "max_attempts": 3},
                # S3-compatible stores answer path-style (ENDPOINT/BUCKET/KEY) whatever their DNS
                s3={"addressing_style": "path"} if endpoint_url else None,
            ))
        except ValueError as error:  # botocore's "Invalid endpoint"
            raise CommandError("--endpoint-url {!r}: {}".format(endpoint_url, error))
        client.head_bucket(Bucket=bucket)  # a missing bucket or bad credentials, before anything else
        present = {archive: _is_there(client, bucket, prefix + archive.path.name, archive) for archive in archives}
        clashes = [archive for archive in archives if present[archive] is False]
        if clashes:
            raise CommandError(_clash_message(bucket, prefix, clashes))
        for release_file in files:
            object_url = "s3://{}/{}{}".format(bucket, prefix, release_file.path.name)
            if present.get(release_file):
                yield "already there", object_url, release_file.size
                continue
            if not dry_run:
                _upload(client, bucket, prefix, release_file, public)
            yield "would upload" if dry_run else "uploaded", object_url, release_file.size


def _import_boto3():
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise CommandError("uota publish needs boto3 for s3:// urls: pip install 'uota[s3]'") from None
    return boto3, Config


def _is_there(client, bucket, key, release_file):
    """True when the object `key` holds the file's bytes, None when there is no such object,
    False when it holds others (or bytes uota cannot compare: a multipart upload by another tool)."""
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] in _NOT_FOUND:
            return None
        raise
    recorded = head.get("Metadata", {}).get(SHA256_METADATA)
    if recorded is not None:
        return recorded == release_file.sha256
    return head.get("ETag", "").strip('"') == release_file.md5 and head.get("ContentLength") == release_file.size


def _clash_message(bucket, prefix, clashes):
    names = ", ".join("s3://{}/{}{}".format(bucket, prefix, archive.path.name) for archive in clashes)
    return ("{} already {} other bytes: a published archive's name never gets new content (devices and "
            "caches may hold the old bytes under it); build the release as a new version. Nothing was "
            "uploaded.".format(names, "holds" if len(clashes) == 1 else "hold"))


def _upload(client, bucket, prefix, release_file, public):
    extra = {"ACL": "public-read"} if public else {}
    with open(release_file.path, "rb") as body:
        client.put_object(
            Bucket=bucket, Key=prefix + release_file.path.name, Body=body,
            ContentType=content_type(release_file.path),
            CacheControl=REVALIDATED_CACHE_CONTROL if revalidated(release_file.path) else ARCHIVE_CACHE_CONTROL,
            Metadata={SHA256_METADATA: release_file.sha256}, **extra,
        )


@contextmanager
def _store_errors(bucket, where):
    """The store's and the network's errors as one-line CommandErrors."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise CommandError(_store_error_message(error, bucket, where)) from None


def _store_error_message(error, bucket, where):
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, NoCredentialsError

    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code", "")
        if code == "NoSuchBucket" or code == "404" and error.operation_name == "HeadBucket":
            return "no bucket {!r} at {}".format(bucket, where)
        if code in _DENIED:
            return ("{} denied access to bucket {!r} ({}): check the credentials (AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and what they may do".format(where, bucket, code))
        if code == "AccessControlListNotSupported":
            return ("bucket {!r} does not allow ACLs: publish without --public and let devices read the "
                    "prefix through a bucket policy or a CDN (docs/hosting.md)".format(bucket))
        return "{} answered {} to {}: {}".format(where, code, error.operation_name, details.get("Message", error))
    if isinstance(error, NoCredentialsError):
        return "no credentials for {}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE".format(where)
    if isinstance(error, (ConnectionError, HTTPClientError)):
        return "cannot reach {}: {}".format(where, error)
    return "{}: {}".format(where, error)


def add_arguments(parser):
    parser.add_argument("dist", metavar="DIST", help="the release folder `uota build` wrote")
    parser.add_argument("url", metavar="URL", help="the bucket and key prefix: s3://BUCKET/PREFIX")
    parser.add_argument("--endpoint-url", metavar="URL",
                        help="an S3-compatible store's endpoint, e.g. https://s3.example.com (default: AWS S3)")
    parser.add_argument("--public", action="store_true",
                        help="make each uploaded object readable by anyone (canned ACL public-read), where the "
                        "bucket allows ACLs")
    parser.add_argument("--dry-run", action="store_true", help="say what would be uploaded, upload nothing")


def run(args):
    """Upload a release folder to S3-compatible object storage, `latest` last."""
    for what, object_url, size in publish_release(args.dist, args.url, args.endpoint_url, args.public, args.dry_run):
        print("{} {} ({} bytes)".format(what, object_url, size))
