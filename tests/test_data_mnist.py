"""MNIST lookup, checks and download, on tiny synthetic files and a local HTTP server.

Every test runs with HOME, XDG_CACHE_HOME and MINIGAN_DATA pointed into its tmp_path and the
checkout's shipped copy hidden, so the real user cache is never read or written, and with
EXPECTED swapped for the tiny files' hashes. The tests at the end read the shipped copy.
"""

import functools
import gzip
import hashlib
import http.server
import os
import socket
import threading
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from minigan.data import MNISTError, download_mnist, find_mnist, load_mnist, mnist, write_idx
from minigan.data.mnist import checkout_mnist_dir, mnist_cache_dir, search_dirs

SHIPPED_MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist"  # data/mnist in this checkout
TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
ADVICE = "or pass --data-dir / set MINIGAN_DATA"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """No test may see the real home, cache, $MINIGAN_DATA or a proxy (the servers are on 127.0.0.1)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("MINIGAN_DATA", raising=False)
    monkeypatch.setattr(mnist, "CHECKOUT_MNIST", tmp_path / "no-checkout" / "data" / "mnist")
    for proxy in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    # Downloads only ever go to servers a test starts.
    monkeypatch.setattr(mnist, "MIRRORS", [f"http://127.0.0.1:{closed_port()}/"])


def tiny_mnist(directory: Path, n_train=6, n_test=4, gzipped=True, image_shape=(28, 28)) -> dict:
    """Write a small random MNIST into `directory`; return {name: array}.

    Call `expect(monkeypatch, directory)` to make EXPECTED describe them.
    """
    rng = np.random.default_rng(0)
    arrays = {
        TRAIN[0]: rng.integers(0, 256, (n_train, *image_shape), dtype=np.uint8),
        TRAIN[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        TEST[0]: rng.integers(0, 256, (n_test, *image_shape), dtype=np.uint8),
        TEST[1]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(directory / (f"{name}.gz" if gzipped else name), array)
    return arrays


def expect(monkeypatch, directory: Path):
    """Make EXPECTED hold the sizes and hashes of the MNIST files in `directory`."""
    table = {}
    for name in TRAIN + TEST:
        path = directory / f"{name}.gz"
        content = gzip.decompress(path.read_bytes()) if path.exists() else (directory / name).read_bytes()
        table[name] = (len(content), hashlib.sha256(content).hexdigest())
    monkeypatch.setattr(mnist, "EXPECTED", table)
    return table


def touch_mnist(directory: Path, names=TRAIN + TEST):
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / f"{name}.gz").write_bytes(b"")


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; under /dropped/ it promises more bytes than it sends, then hangs up."""

    def do_GET(self):
        if self.path.startswith("/dropped/"):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"\x1f\x8b" + bytes(50))
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def serve(tmp_path):
    """serve(directory) -> base URL of an HTTP server on 127.0.0.1 that serves it."""
    servers = []

    def start(directory: Path) -> str:
        directory.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # A short poll interval, so that shutdown() at teardown returns at once.
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- loading and checking local files -------------------------------------------------------

@pytest.mark.parametrize("gzipped", [True, False])
def test_load_returns_the_arrays_in_the_files(tmp_path, monkeypatch, gzipped):
    arrays = tiny_mnist(tmp_path / "mnist", gzipped=gzipped)
    expect(monkeypatch, tmp_path / "mnist")
    for split, (images_name, labels_name) in [("train", TRAIN), ("test", TEST)]:
        images, labels = load_mnist(split, data_dir=tmp_path / "mnist", download=False)
        assert images.dtype == np.uint8 and labels.dtype == np.uint8
        np.testing.assert_array_equal(images, arrays[images_name])
        np.testing.assert_array_equal(labels, arrays[labels_name])


def test_checksum_mismatch(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "mnist")
    table = expect(monkeypatch, tmp_path / "mnist")
    path = tmp_path / "mnist" / f"{TRAIN[0]}.gz"
    write_idx(path, np.zeros((6, 28, 28), np.uint8))  # same size, other pixels
    actual = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
    with pytest.raises(MNISTError) as info:
        load_mnist("train", data_dir=tmp_path / "mnist")
    assert str(info.value) == (f"checksum mismatch for {path}: expected SHA-256 {table[TRAIN[0]][1]}, "
                               f"got {actual}; delete it and retry")


def test_truncated_gzip_file(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "mnist")
    expect(monkeypatch, tmp_path / "mnist")
    path = tmp_path / "mnist" / f"{TRAIN[0]}.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(MNISTError, match=rf"^MNIST file {path} is truncated: expected 4720 bytes after "
                                         rf"decompression, got \d+; delete it and retry$"):
        load_mnist("train", data_dir=tmp_path / "mnist")


def test_truncated_raw_file(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "mnist", gzipped=False)
    expect(monkeypatch, tmp_path / "mnist")
    path = tmp_path / "mnist" / TRAIN[1]
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(MNISTError) as info:
        load_mnist("train", data_dir=tmp_path / "mnist")
    assert str(info.value) == (f"MNIST file {path} is truncated: expected 14 bytes after decompression, "
                               f"got 10; delete it and retry")


def test_images_of_the_wrong_shape(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "mnist", image_shape=(28, 27))
    expect(monkeypatch, tmp_path / "mnist")
    path = tmp_path / "mnist" / f"{TRAIN[0]}.gz"
    with pytest.raises(MNISTError) as info:
        load_mnist("train", data_dir=tmp_path / "mnist")
    assert str(info.value) == f"{path} holds uint8 of shape (6, 28, 27); MNIST images are uint8 of shape (N, 28, 28)"


def test_image_and_label_counts_must_agree(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / f"{TRAIN[1]}.gz", np.zeros(5, np.uint8))
    expect(monkeypatch, tmp_path / "mnist")
    with pytest.raises(MNISTError, match=r"^MNIST train split in .* has 6 images but 5 labels$"):
        load_mnist("train", data_dir=tmp_path / "mnist")


def test_unknown_split(tmp_path):
    with pytest.raises(MNISTError, match=r"unknown MNIST split 'validation': use 'train' or 'test'"):
        load_mnist("validation", data_dir=tmp_path)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(MNISTError) as info:
        load_mnist("test", data_dir=tmp_path / "nowhere", download=False)
    assert str(info.value) == (f"MNIST not found and download=False: put {TEST[0]}.gz, {TEST[1]}.gz "
                               f"in {tmp_path / 'nowhere'}, {ADVICE}")


# --- where MNIST is looked for --------------------------------------------------------------

def test_cache_dir_follows_xdg_cache_home_then_home(tmp_path, monkeypatch):
    assert mnist_cache_dir() == tmp_path / "xdg-cache" / "minigan" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert mnist_cache_dir() == tmp_path / "home" / ".cache" / "minigan" / "mnist"


def test_lookup_order_is_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    explicit, from_env, cache = tmp_path / "explicit", tmp_path / "env", mnist_cache_dir()
    monkeypatch.setenv("MINIGAN_DATA", str(from_env))
    assert search_dirs(explicit) == [explicit, from_env, cache]
    assert find_mnist(explicit) is None

    touch_mnist(cache)
    assert find_mnist(explicit) == cache
    touch_mnist(from_env)
    assert find_mnist(explicit) == from_env
    touch_mnist(explicit)
    assert find_mnist(explicit) == explicit
    assert find_mnist() == from_env
    monkeypatch.delenv("MINIGAN_DATA")
    assert find_mnist() == cache


def fake_checkout(root: Path) -> Path:
    """A checkout at `root` (it has a pyproject.toml) with an empty data/mnist; returns that folder."""
    (root / "data" / "mnist").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    return root / "data" / "mnist"


def test_lookup_puts_the_checkout_copy_between_the_environment_and_the_cache(tmp_path, monkeypatch):
    explicit, from_env, cache = tmp_path / "explicit", tmp_path / "env", mnist_cache_dir()
    monkeypatch.setenv("MINIGAN_DATA", str(from_env))
    monkeypatch.setattr(mnist, "CHECKOUT_MNIST", tmp_path / "repo" / "data" / "mnist")
    assert search_dirs(explicit) == [explicit, from_env, cache]  # no checkout copy: not listed
    checkout = fake_checkout(tmp_path / "repo")
    assert search_dirs(explicit) == [explicit, from_env, checkout, cache]

    touch_mnist(cache)
    touch_mnist(checkout)
    assert find_mnist(explicit) == checkout  # before the cache
    touch_mnist(from_env)
    assert find_mnist(explicit) == from_env  # after the environment
    monkeypatch.delenv("MINIGAN_DATA")
    assert find_mnist() == checkout


def test_a_data_mnist_folder_outside_a_checkout_is_not_used(tmp_path, monkeypatch):
    """An installed package's parents[2] is site-packages; a stray data/mnist there is not ours."""
    (tmp_path / "site-packages" / "data" / "mnist").mkdir(parents=True)
    monkeypatch.setattr(mnist, "CHECKOUT_MNIST", tmp_path / "site-packages" / "data" / "mnist")
    assert checkout_mnist_dir() is None
    assert search_dirs() == [mnist_cache_dir()]


def test_a_split_missing_from_the_checkout_is_downloaded_into_the_cache(tmp_path, monkeypatch, serve):
    arrays = tiny_mnist(tmp_path / "mirror")
    expect(monkeypatch, tmp_path / "mirror")
    monkeypatch.setattr(mnist, "MIRRORS", [serve(tmp_path / "mirror")])
    checkout = fake_checkout(tmp_path / "repo")
    monkeypatch.setattr(mnist, "CHECKOUT_MNIST", checkout)
    images, _ = load_mnist("train")
    np.testing.assert_array_equal(images, arrays[TRAIN[0]])
    assert list(checkout.iterdir()) == []  # a download never writes into the repository
    assert sorted(p.name for p in mnist_cache_dir().iterdir()) == sorted(f"{name}.gz" for name in TRAIN)


def test_lookup_wants_all_files_of_the_split(tmp_path):
    touch_mnist(tmp_path / "only-test", names=TEST)
    (tmp_path / "only-test" / f"{TRAIN[0]}").write_bytes(b"")  # raw counts as present too
    assert find_mnist(tmp_path / "only-test", split="test") == tmp_path / "only-test"
    assert find_mnist(tmp_path / "only-test", split="train") is None
    assert find_mnist(tmp_path / "only-test") is None  # None: both splits


def test_load_finds_files_through_the_environment(tmp_path, monkeypatch):
    arrays = tiny_mnist(tmp_path / "env")
    expect(monkeypatch, tmp_path / "env")
    monkeypatch.setenv("MINIGAN_DATA", str(tmp_path / "env"))
    images, _ = load_mnist("train", data_dir=tmp_path / "empty", download=False)
    np.testing.assert_array_equal(images, arrays[TRAIN[0]])


# --- downloading ----------------------------------------------------------------------------

def test_download_fetches_the_missing_files(tmp_path, monkeypatch, serve):
    arrays = tiny_mnist(tmp_path / "mirror")
    expect(monkeypatch, tmp_path / "mirror")
    dest = tmp_path / "dest"
    assert download_mnist(dest, mirrors=[serve(tmp_path / "mirror")]) == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{name}.gz" for name in TRAIN + TEST)
    images, labels = load_mnist("test", data_dir=dest, download=False)
    np.testing.assert_array_equal(images, arrays[TEST[0]])
    np.testing.assert_array_equal(labels, arrays[TEST[1]])


def test_load_downloads_only_its_split_into_the_cache(tmp_path, monkeypatch, serve):
    arrays = tiny_mnist(tmp_path / "mirror")
    expect(monkeypatch, tmp_path / "mirror")
    monkeypatch.setattr(mnist, "MIRRORS", [serve(tmp_path / "mirror")])
    images, _ = load_mnist("train")
    np.testing.assert_array_equal(images, arrays[TRAIN[0]])
    assert sorted(p.name for p in mnist_cache_dir().iterdir()) == sorted(f"{name}.gz" for name in TRAIN)


def test_a_mirror_that_404s_is_skipped(tmp_path, monkeypatch, serve):
    arrays = tiny_mnist(tmp_path / "good")
    expect(monkeypatch, tmp_path / "good")
    mirrors = [serve(tmp_path / "empty"), serve(tmp_path / "good")]
    download_mnist(tmp_path / "dest", mirrors=mirrors, split="train")
    _, labels = load_mnist("train", data_dir=tmp_path / "dest", download=False)
    np.testing.assert_array_equal(labels, arrays[TRAIN[1]])


def test_a_mirror_that_only_404s(tmp_path, serve):
    url = serve(tmp_path / "empty")
    with pytest.raises(MNISTError) as info:
        download_mnist(tmp_path / "dest", mirrors=[url])
    assert str(info.value) == f"could not download {TRAIN[0]}.gz: {url}{TRAIN[0]}.gz: HTTP 404 File not found"
    assert not (tmp_path / "dest").exists()


def test_a_corrupt_mirror_is_skipped(tmp_path, monkeypatch, serve):
    tiny_mnist(tmp_path / "good")
    expect(monkeypatch, tmp_path / "good")
    (tmp_path / "bad").mkdir()
    write_idx(tmp_path / "bad" / f"{TRAIN[0]}.gz", np.zeros((6, 28, 28), np.uint8))
    write_idx(tmp_path / "bad" / f"{TRAIN[1]}.gz", np.zeros(6, np.uint8))
    download_mnist(tmp_path / "dest", mirrors=[serve(tmp_path / "bad"), serve(tmp_path / "good")])
    load_mnist("train", data_dir=tmp_path / "dest", download=False)  # passes its checks


def test_corrupt_download_leaves_nothing(tmp_path, monkeypatch, serve):
    tiny_mnist(tmp_path / "good")
    table = expect(monkeypatch, tmp_path / "good")
    (tmp_path / "bad").mkdir()
    write_idx(tmp_path / "bad" / f"{TRAIN[0]}.gz", np.zeros((6, 28, 28), np.uint8))
    url = serve(tmp_path / "bad")
    dest = tmp_path / "dest"
    with pytest.raises(MNISTError) as info:
        download_mnist(dest, mirrors=[url])
    zeros_sha256 = hashlib.sha256(gzip.decompress((tmp_path / "bad" / f"{TRAIN[0]}.gz").read_bytes())).hexdigest()
    assert str(info.value) == (f"could not download {TRAIN[0]}.gz: checksum mismatch for {url}{TRAIN[0]}.gz: "
                               f"expected SHA-256 {table[TRAIN[0]][1]}, got {zeros_sha256}")
    assert not dest.exists()


def test_truncated_download_leaves_nothing(tmp_path, monkeypatch, serve):
    tiny_mnist(tmp_path / "good")
    expect(monkeypatch, tmp_path / "good")
    cut = tmp_path / "cut" / f"{TRAIN[0]}.gz"
    cut.parent.mkdir()
    cut.write_bytes((tmp_path / "good" / f"{TRAIN[0]}.gz").read_bytes()[:-30])
    url = serve(tmp_path / "cut")
    with pytest.raises(MNISTError, match=rf"^could not download {TRAIN[0]}.gz: MNIST file {url}{TRAIN[0]}.gz "
                                         rf"is truncated: expected 4720 bytes after decompression, got \d+$"):
        download_mnist(tmp_path / "dest", mirrors=[url])
    assert not (tmp_path / "dest").exists()


def test_dropped_connection_leaves_nothing(tmp_path, monkeypatch, serve):
    tiny_mnist(tmp_path / "good")
    expect(monkeypatch, tmp_path / "good")
    url = serve(tmp_path / "good") + "dropped/"
    with pytest.raises(MNISTError, match=r"IncompleteRead"):
        download_mnist(tmp_path / "dest", mirrors=[url])
    assert not (tmp_path / "dest").exists()


def test_offline_error_is_one_line_that_says_what_to_do(tmp_path, monkeypatch):
    first, second = f"http://127.0.0.1:{closed_port()}/", f"http://127.0.0.1:{closed_port()}/mnist"
    monkeypatch.setattr(mnist, "MIRRORS", [first, second])
    with pytest.raises(MNISTError) as info:
        load_mnist("train")
    message = str(info.value)
    assert "\n" not in message
    assert message == (f"MNIST not found and could not be downloaded (could not download {TRAIN[0]}.gz: "
                       f"{first}{TRAIN[0]}.gz: Connection refused; {second}/{TRAIN[0]}.gz: Connection refused): "
                       f"put {TRAIN[0]}.gz, {TRAIN[1]}.gz in {mnist_cache_dir()}, {ADVICE}")
    assert not (tmp_path / "xdg-cache").exists()  # a failed download creates no folders


def test_a_mirror_that_never_answers_times_out(tmp_path):
    with socket.socket() as silent:  # accepts connections (the kernel does) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        with pytest.raises(MNISTError, match=rf"^could not download {TRAIN[0]}.gz: {url}{TRAIN[0]}.gz: timed out$"):
            download_mnist(tmp_path / "dest", mirrors=[url], timeout=0.2)
    assert not (tmp_path / "dest").exists()


def test_a_failed_download_into_a_nested_data_dir_creates_nothing(tmp_path):
    with pytest.raises(MNISTError, match="could not be downloaded"):
        load_mnist("test", data_dir=tmp_path / "a" / "b" / "mnist")
    assert not (tmp_path / "a").exists()


# --- the wrong file under the right name --------------------------------------------------------

def test_a_labels_file_under_the_images_name(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "mnist")
    expect(monkeypatch, tmp_path / "mnist")
    path = tmp_path / "mnist" / f"{TRAIN[0]}.gz"
    path.write_bytes((tmp_path / "mnist" / f"{TRAIN[1]}.gz").read_bytes())
    with pytest.raises(MNISTError) as info:
        load_mnist("train", data_dir=tmp_path / "mnist", download=False)
    assert str(info.value) == f"MNIST file {path} holds an IDX labels file (magic 2049), not images"


def test_an_images_file_under_the_labels_name(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "mnist", gzipped=False)
    expect(monkeypatch, tmp_path / "mnist")
    path = tmp_path / "mnist" / TEST[1]
    path.write_bytes((tmp_path / "mnist" / TEST[0]).read_bytes())
    with pytest.raises(MNISTError) as info:
        load_mnist("test", data_dir=tmp_path / "mnist", download=False)
    assert str(info.value) == f"MNIST file {path} holds an IDX images file (magic 2051), not labels"


def test_an_idx_file_of_another_dtype(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "mnist")
    expect(monkeypatch, tmp_path / "mnist")
    path = tmp_path / "mnist" / f"{TEST[1]}.gz"
    write_idx(path, np.zeros((4, 2), np.float32))
    with pytest.raises(MNISTError) as info:
        load_mnist("test", data_dir=tmp_path / "mnist", download=False)
    assert str(info.value) == (f"MNIST file {path} holds an IDX file of float32 with 2 dimensions (magic 3330), "
                               f"not labels")


@pytest.mark.parametrize("gzipped", [False, True])
def test_an_html_page_under_an_mnist_name(tmp_path, monkeypatch, gzipped):
    tiny_mnist(tmp_path / "mnist")
    expect(monkeypatch, tmp_path / "mnist")
    path = tmp_path / "mnist" / f"{TRAIN[0]}.gz"
    page = b"<!DOCTYPE html>\n<html><body>Access denied</body></html>\n"
    path.write_bytes(gzip.compress(page) if gzipped else page)
    with pytest.raises(MNISTError) as info:
        load_mnist("train", data_dir=tmp_path / "mnist", download=False)
    assert str(info.value) == f"MNIST file {path} starts with '<!DOCTYPE html' — an HTML page, not an IDX file"


def test_binary_junk_under_an_mnist_name(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "mnist")
    expect(monkeypatch, tmp_path / "mnist")
    path = tmp_path / "mnist" / f"{TEST[1]}.gz"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(MNISTError) as info:
        load_mnist("test", data_dir=tmp_path / "mnist", download=False)
    assert str(info.value) == f"MNIST file {path} starts with bytes 89 50 4e 47 — not an IDX file"


def test_a_mirror_that_serves_an_html_page(tmp_path, monkeypatch, serve):
    tiny_mnist(tmp_path / "good")
    expect(monkeypatch, tmp_path / "good")
    (tmp_path / "portal").mkdir()
    (tmp_path / "portal" / f"{TRAIN[0]}.gz").write_bytes(b"<html><head><title>Log in</title></head></html>")
    url = serve(tmp_path / "portal")
    with pytest.raises(MNISTError) as info:
        download_mnist(tmp_path / "dest", mirrors=[url])
    assert str(info.value) == (f"could not download {TRAIN[0]}.gz: MNIST file {url}{TRAIN[0]}.gz starts with "
                               f"'<html><head><t' — an HTML page, not an IDX file")
    assert not (tmp_path / "dest").exists()


def test_a_file_cut_inside_its_magic_number_is_still_truncated(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "mnist", gzipped=False)
    expect(monkeypatch, tmp_path / "mnist")
    path = tmp_path / "mnist" / TRAIN[1]
    path.write_bytes(path.read_bytes()[:3])
    with pytest.raises(MNISTError) as info:
        load_mnist("train", data_dir=tmp_path / "mnist", download=False)
    assert str(info.value) == (f"MNIST file {path} is truncated: expected 14 bytes after decompression, "
                               f"got 3; delete it and retry")


@pytest.mark.parametrize("split", ["train", "test"])
def test_train_and_test_files_swapped_say_so(tmp_path, monkeypatch, split):
    folder = tmp_path / "mnist"
    tiny_mnist(folder, n_train=6, n_test=4)
    expect(monkeypatch, folder)
    for train_name, test_name in zip(TRAIN, TEST):  # swap each train file with its test twin
        train_file, test_file = folder / f"{train_name}.gz", folder / f"{test_name}.gz"
        train_bytes = train_file.read_bytes()
        train_file.write_bytes(test_file.read_bytes())
        test_file.write_bytes(train_bytes)
    path = folder / f"{(TRAIN if split == 'train' else TEST)[0]}.gz"
    should, holds = ("train", "t10k") if split == "train" else ("t10k", "train")
    count, other = (6, 4) if split == "train" else (4, 6)
    with pytest.raises(MNISTError) as info:
        load_mnist(split, data_dir=folder, download=False)
    assert str(info.value) == (f"MNIST file {path} should hold the {should} split's {count} images, but it holds "
                               f"the {holds} file's {other} images: are the train and test files swapped?")


def test_an_idx_header_with_another_count_says_the_count(tmp_path, monkeypatch):
    folder = tmp_path / "mnist"
    tiny_mnist(folder, n_train=6, n_test=4)
    expect(monkeypatch, folder)
    path = folder / f"{TRAIN[1]}.gz"
    write_idx(path, np.zeros(5, np.uint8))
    with pytest.raises(MNISTError) as info:
        load_mnist("train", data_dir=folder, download=False)
    assert str(info.value) == (f"MNIST file {path} should hold the train split's 6 labels, but its header says "
                               f"5 labels")


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "env")
    expect(monkeypatch, tmp_path / "env")
    monkeypatch.setenv("MINIGAN_DATA", str(tmp_path / "env"))  # a copy it could fall back to, but must not
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(MNISTError) as info:
        load_mnist("train", data_dir=tmp_path / "file")
    assert str(info.value) == (f"--data-dir {tmp_path / 'file'} is a file, not a folder: give the folder that "
                               f"holds {TRAIN[0]}.gz, {TRAIN[1]}.gz")
    monkeypatch.setenv("MINIGAN_DATA", str(tmp_path / "file"))
    with pytest.raises(MNISTError, match=r"^MINIGAN_DATA .*file is a file, not a folder"):
        load_mnist("train")


def test_a_fallback_names_the_file_the_folder_given_lacks(tmp_path, monkeypatch, capsys):
    tiny_mnist(tmp_path / "env")
    expect(monkeypatch, tmp_path / "env")
    monkeypatch.setenv("MINIGAN_DATA", str(tmp_path / "env"))
    tiny_mnist(tmp_path / "half")
    (tmp_path / "half" / f"{TRAIN[1]}.gz").unlink()
    load_mnist("train", data_dir=tmp_path / "half", download=False)
    assert capsys.readouterr().err == (f"note: --data-dir {tmp_path / 'half'} lacks {TRAIN[1]}.gz; "
                                       f"using the MNIST copy in {tmp_path / 'env'}\n")


@pytest.mark.parametrize("given", ["missing", "empty"])
def test_a_fallback_from_the_folder_given_names_the_folder_used(tmp_path, monkeypatch, capsys, given):
    arrays = tiny_mnist(tmp_path / "env")
    expect(monkeypatch, tmp_path / "env")
    monkeypatch.setenv("MINIGAN_DATA", str(tmp_path / "env"))
    folder = tmp_path / given
    if given == "empty":
        folder.mkdir()
    images, _ = load_mnist("train", data_dir=folder, download=False)
    np.testing.assert_array_equal(images, arrays[TRAIN[0]])
    state = "does not exist" if given == "missing" else f"lacks {TRAIN[0]}.gz, {TRAIN[1]}.gz"
    assert capsys.readouterr().err == f"note: --data-dir {folder} {state}; using the MNIST copy in {tmp_path / 'env'}\n"


def test_no_note_when_the_folder_given_holds_the_split(tmp_path, monkeypatch, capsys):
    tiny_mnist(tmp_path / "mnist")
    expect(monkeypatch, tmp_path / "mnist")
    load_mnist("train", data_dir=tmp_path / "mnist", download=False)
    monkeypatch.setenv("MINIGAN_DATA", str(tmp_path / "mnist"))
    load_mnist("train")
    assert capsys.readouterr().err == ""


# --- the real thing -------------------------------------------------------------------------

def test_the_shipped_copy_is_found_with_no_arguments(monkeypatch):
    """A bare clone just works: no --data-dir, no $MINIGAN_DATA, an empty cache, no network."""
    monkeypatch.setattr(mnist, "CHECKOUT_MNIST", SHIPPED_MNIST)
    assert find_mnist() == SHIPPED_MNIST
    images, labels = load_mnist("test")  # the real EXPECTED: the shipped files pass the pinned SHA-256s
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert not mnist_cache_dir().exists()


def test_real_mnist_from_the_shipped_copy():
    """The real files pass the real checksums, and match the README's sanity figures."""
    images, labels = load_mnist("train", data_dir=SHIPPED_MNIST, download=False)
    assert images.shape == (60000, 28, 28) and labels.shape == (60000,)
    assert images.mean() / 255 == pytest.approx(0.13066, abs=1e-5)
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    images, labels = load_mnist("test", data_dir=SHIPPED_MNIST, download=False)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert images.mean() / 255 == pytest.approx(0.13251, abs=1e-5)


# --- files that are not plain files, and files that inflate without end -----------------------------


@pytest.mark.parametrize("kind, said", [
    ("fifo", "is a FIFO (named pipe), not a regular file"),
    ("loop", "is a symlink loop (a link that leads back to itself)"),
    ("dangling", "is a link to nowhere.gz, which does not exist"),
])
def test_a_labels_file_that_is_no_plain_file_is_named_not_called_missing(tmp_path, monkeypatch, kind, said):
    directory = tmp_path / "mnist"
    tiny_mnist(directory)
    expect(monkeypatch, directory)
    labels = directory / f"{TRAIN[1]}.gz"
    labels.unlink()
    if kind == "fifo":
        os.mkfifo(labels)  # reading it would block until a writer came
    elif kind == "loop":
        labels.symlink_to(labels.name)
    else:
        labels.symlink_to("nowhere.gz")
    with pytest.raises(MNISTError) as info:
        load_mnist("train", data_dir=directory, download=False)
    assert str(info.value) == f"MNIST file {labels} {said}"


def test_a_gzip_bomb_under_an_mnist_name_stops_at_the_expected_size(tmp_path, monkeypatch):
    directory = tmp_path / "mnist"
    tiny_mnist(directory)
    table = expect(monkeypatch, directory)
    labels = directory / f"{TRAIN[1]}.gz"
    stream = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    with open(labels, "wb") as f:  # the right header, then 200 MB of zeros, never held whole
        f.write(stream.compress(b"\x00\x00\x08\x01" + (6).to_bytes(4, "big")))
        for _ in range(200):
            f.write(stream.compress(bytes(1 << 20)))
        f.write(stream.flush())
    tracemalloc.start()
    try:
        with pytest.raises(MNISTError) as info:
            load_mnist("train", data_dir=directory, download=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    limit = table[TRAIN[1]][0] + 2**16
    assert str(info.value) == (f"MNIST file {labels} is too long: expected {table[TRAIN[1]][0]} bytes after "
                               f"decompression, got more than {limit} (inflating stopped there); delete it and retry")
    assert peak < 2**20, peak
