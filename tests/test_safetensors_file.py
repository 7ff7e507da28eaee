"""blendgan.weights.safetensors_file: reads what the safetensors library writes (and the reverse) tensor for tensor,
maps instead of reading, never writes through to the file, and refuses malformed files."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from blendgan.weights import safetensors_file as stf


def mixed_tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "w": torch.randn(300, 70, generator=g),  # 84000 bytes, a multiple of 64
        "b": torch.randn(3, generator=g),  # 12 bytes: packed unaligned after "w"
        "half": torch.randn(5, 7, generator=g).half(),
        "bf": torch.randn(9, generator=g).bfloat16(),
        "d": torch.randn(2, 2, generator=g, dtype=torch.float64),
        "i": torch.arange(-5, 6, dtype=torch.int64),
        "flag": torch.tensor([True, False, True]),
        "byte": torch.arange(7, dtype=torch.uint8),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }


def assert_same(got, want):
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        assert torch.equal(got[k], want[k]), k


def test_reads_files_written_by_the_library(tmp_path):
    path = tmp_path / "lib.safetensors"
    save_file(mixed_tensors(), path, metadata={"format": "pt", "note": "x"})
    tensors, meta = stf.read(path)
    assert_same(tensors, load_file(path))
    assert meta == {"format": "pt", "note": "x"}
    for t in tensors.values():  # whatever the library's packing, every view is usable at its dtype
        assert t.data_ptr() % t.element_size() == 0


def test_written_files_are_standard_and_aligned(tmp_path):
    want = mixed_tensors()
    path = stf.write(want, {"k": "v"}, tmp_path / "sub" / "ours.safetensors")
    assert_same(load_file(path), want)  # the library reads them
    tensors, meta = stf.read(path)
    assert_same(tensors, want) and meta == {"k": "v"}
    assert tensors["w"].data_ptr() % stf.ALIGN == 0
    assert stf.metadata(path) == {"k": "v"}
    assert not [p.name for p in path.parent.iterdir() if p.name != path.name]  # no temporary left behind
    assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_tensors_are_views_of_one_mapping_and_never_write_the_file(tmp_path):
    path = stf.write({"big": torch.ones(1 << 18), "other": torch.full((64,), 3.0)}, {}, tmp_path / "m.safetensors")
    before = path.read_bytes()
    tensors, _ = stf.read(path)
    header, start = stf.read_header(path)
    # laid out in memory exactly as in the file: one mapping, not a copy per tensor
    offsets = {k: start + header[k]["data_offsets"][0] for k in tensors}
    assert tensors["other"].data_ptr() - tensors["big"].data_ptr() == offsets["other"] - offsets["big"]
    assert tensors["big"].data_ptr() % stf.ALIGN == 0
    tensors["big"].mul_(2)  # copy-on-write: the process sees the change, the file does not
    assert float(tensors["big"][0]) == 2.0 and path.read_bytes() == before
    assert torch.equal(stf.read(path)[0]["big"], torch.ones(1 << 18))


def test_element_misaligned_data_is_copied(tmp_path):
    # a hand-made file where a float32 starts at an odd byte: legal in the format, not viewable in place
    header = {
        "u": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
        "f": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]},
    }
    head = json.dumps(header).encode()
    head += b" " * (-(8 + len(head)) % 8)
    path = tmp_path / "odd.safetensors"
    path.write_bytes(len(head).to_bytes(8, "little") + head + b"\x07" + torch.tensor([1.5, -2.0]).numpy().tobytes())
    tensors, _ = stf.read(path)
    assert torch.equal(tensors["f"], torch.tensor([1.5, -2.0])) and int(tensors["u"]) == 7


def raw_file(path, header, data=b""):
    head = json.dumps(header).encode()
    path.write_bytes(len(head).to_bytes(8, "little") + head + data)
    return path


F32x2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    "header, data, why",
    [
        (
            {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
            b"\0" * 8,
            "cover 16 bytes of data but the file holds 8",
        ),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, b"\0" * 16, "span 16 bytes but"),
        (
            {"a": F32x2, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
            b"\0" * 12,
            "without gaps or overlaps",
        ),
        (
            {"a": F32x2, "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}},
            b"\0" * 20,
            "without gaps or overlaps",
        ),
        ({"a": F32x2}, b"\0" * 12, "cover 8 bytes of data but the file holds 12"),
        ({"a": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "dtype Q7 is not supported"),
        (
            {"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}},
            b"\0" * 8,
            "needs dtype, shape and data_offsets",
        ),
        ({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, "needs dtype, shape and data_offsets"),
        ({"__metadata__": {"k": 1}, "a": F32x2}, b"\0" * 8, "__metadata__ is not a map of strings"),
        ([1, 2], b"", "not a JSON object"),
    ],
)
def test_malformed_files_are_refused_like_the_library_does(tmp_path, header, data, why):
    path = raw_file(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(stf.SafetensorsFormatError) as err:
        stf.read(path)
    assert why in str(err.value) and "\n" not in str(err.value)
    # the reference implementation refuses the same files (its exception type varies with its version)
    with pytest.raises(Exception):  # noqa: B017
        load_file(path)


def test_dtypes_the_library_knows_but_torch_models_never_use_are_refused_clearly(tmp_path):
    path = raw_file(
        tmp_path / "f8.safetensors", {"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, b"\0\0"
    )
    with pytest.raises(stf.SafetensorsFormatError, match="dtype F8_E4M3 is not supported"):
        stf.read(path)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x05\x00",
        (1000).to_bytes(8, "little") + b'{"a":',
        (20).to_bytes(8, "little") + b'{"a": garbage}      ',
    ],
)
def test_truncated_or_garbled_headers_are_refused(tmp_path, raw):
    path = tmp_path / "short.safetensors"
    path.write_bytes(raw)
    with pytest.raises(stf.SafetensorsFormatError):
        stf.read(path)
    with pytest.raises(Exception):  # noqa: B017 (the library's own exception types vary with its version)
        load_file(path)


def test_unstorable_dtype_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(stf.SafetensorsFormatError, match="complex64"):
        stf.write({"c": torch.zeros(2, dtype=torch.complex64)}, {}, tmp_path / "c.safetensors")
    assert list(tmp_path.iterdir()) == []
