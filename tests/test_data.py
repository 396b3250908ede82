import gzip
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2l_tf.problems import data
from l2l_tf.problems.idx import IdxFormatError, read_idx


def _idx(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    header = struct.pack(">HBB", 0, dtype_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_reads_the_shared_mnist_sample(mnist_data_dir):
    train = data.load_idx_split(mnist_data_dir, "train")
    test = data.load_idx_split(mnist_data_dir, "test")
    assert train.images.shape == (8000, 784) and test.images.shape == (2000, 784)
    assert train.images.dtype == np.float32 and 0.0 <= train.images.min() and train.images.max() <= 1.0
    counts = np.bincount(np.concatenate([train.labels, test.labels]), minlength=10)
    assert counts.tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]  # the sample's README


def test_round_trip_plain_and_gzip(tmp_path):
    array = np.arange(24).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(_idx(array))
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx(array)))
    np.testing.assert_array_equal(read_idx(str(tmp_path / "a")), array)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "a.gz"), expected_ndim=3), array)


def test_rejects_wrong_magic_truncation_and_absurd_sizes(tmp_path):
    good = _idx(np.zeros((4, 2, 2)))
    cases = {
        "magic": (b"\x12\x34" + good[2:], "bad IDX magic"),
        "float": (_idx(np.zeros((4, 2, 2)), dtype_code=0x0D), "bad IDX magic"),
        "truncated": (good[:-3], "truncated"),
        "header": (good[:9], "truncated header"),
        "trailing": (good + b"\x00", "trailing bytes"),
        "huge": (struct.pack(">HBB3I", 0, 8, 3, 60000, 60000, 60000), "refusing"),
        "empty": (b"", "too short"),
    }
    for name, (payload, message) in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(IdxFormatError, match=message):
            read_idx(str(tmp_path / name))
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(IdxFormatError, match="cannot decompress"):
        read_idx(str(tmp_path / "bad.gz"))
    with pytest.raises(IdxFormatError, match="expected 1 dimensions"):
        (tmp_path / "ok").write_bytes(good)
        read_idx(str(tmp_path / "ok"), expected_ndim=1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=64), prefix=st.sampled_from([b"", b"\x00\x00\x08\x01", b"\x00\x00\x08\x03"]))
def test_fuzzed_files_give_an_array_or_a_clear_error(tmp_path, payload, prefix):
    path = tmp_path / "fuzz"
    path.write_bytes(prefix + payload)
    try:
        array = read_idx(str(path))
    except IdxFormatError as error:
        assert str(path) in str(error)
    else:
        assert array.dtype == np.uint8 and array.size == len(prefix + payload) - 4 - 4 * array.ndim


def test_missing_files_and_offline_tfds_name_the_offline_option(tmp_path, monkeypatch):
    with pytest.raises(data.DataUnavailableError, match="IDX data_dir must be a folder"):
        data.load_split("train", data.IDX, str(tmp_path))
    with pytest.raises(data.DataUnavailableError, match="source 'idx' needs a data_dir"):
        data.load_split("train", data.IDX, None)
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to establish a new connection: network unreachable")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(data.DataUnavailableError, match="source 'idx' with a data_dir"):
        data.load_split("train", data.TFDS, None)
    with pytest.raises(data.DataUnavailableError, match="prepare 'cifar10' once .* as the data_dir"):
        data.load_split("train", data.TFDS, None, dataset="cifar10")


def test_tfds_path_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        split = data.load_split("train", data.TFDS, None)
    assert split.images.shape == (40, 784) and split.labels.shape == (40,)
    assert split.images.min() >= 0.0 and split.images.max() <= 1.0
