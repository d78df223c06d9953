"""Decoding photos: formats, colour modes, EXIF orientation, reduced-size decode and errors."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from beaver import images
from beaver.errors import BeaverError
from beaver.images import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    ImageLoadError,
    LoadedImage,
    load_image,
    open_image,
    register_heif,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """The image saved in ``fmt`` as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def write(path: Path, image: Image.Image, fmt: str, **options: object) -> Path:
    """Save the image to ``path`` and return the path."""
    path.write_bytes(encode(image, fmt, **options))
    return path


def marked(width: int, height: int) -> Image.Image:
    """Blue image with a red block in its top-left corner (a quarter of each side)."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width // 4, height // 4))
    return image


def exif(orientation: int) -> bytes:
    """A raw EXIF block (little-endian, as Pillow writes it) holding an orientation."""
    block = Image.Exif()
    block[0x0112] = orientation
    return block.tobytes()


def red_corner(pixels: np.ndarray) -> str:
    """Which corner of the pixels holds the red block: TL, TR, BL or BR."""
    height, width = pixels.shape[:2]
    corners = {
        "TL": pixels[2, 2],
        "TR": pixels[2, width - 3],
        "BL": pixels[height - 3, 2],
        "BR": pixels[height - 3, width - 3],
    }
    red = [name for name, value in corners.items() if value[0] > 200 and value[2] < 60]
    assert len(red) == 1, corners
    return red[0]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body and CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_16bit_rgb(width: int, height: int, rgb16: tuple[int, int, int]) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""

    row = b"\x00" + struct.pack(">HHH", *rgb16) * width
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(row * height))
        + png_chunk(b"IEND", b"")
    )


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size that its few bytes of pixel data do not hold."""

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + idat + png_chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header is patched to claim a bigger size (data then runs out)."""
    data = bytearray(encode(Image.new("RGB", (16, 16), RED), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def tiff_claiming(width: int, height: int) -> bytes:
    """A small greyscale TIFF whose width and length tags are patched to claim a bigger size."""
    data = bytearray(encode(Image.new("L", (4, 4)), "TIFF"))
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in (256, 257):
            fmt = "<H" if kind == 3 else "<I"
            struct.pack_into(fmt, data, entry + 8, width if tag == 256 else height)
    return bytes(data)


# --- API basics -------------------------------------------------------------------------------


def test_suffixes_are_lower_case_with_a_dot() -> None:
    required = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".heic", ".heif", ".tif"}
    assert required | {".tiff", ".bmp"} <= IMAGE_SUFFIXES
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)
    from PIL import features

    assert (".avif" in IMAGE_SUFFIXES) == bool(features.check("avif"))


def test_error_names_the_file_and_reason() -> None:
    error = ImageLoadError(Path("a/b.jpg"), "truncated or corrupt file")
    assert str(error) == "a/b.jpg: truncated or corrupt file"
    assert error.path == Path("a/b.jpg")
    assert error.reason == "truncated or corrupt file"
    assert isinstance(error, BeaverError)


def test_full_decode_is_rgb_contiguous_at_scale_one(tmp_path: Path) -> None:
    path = write(tmp_path / "a.png", marked(40, 20), "PNG")
    loaded = load_image(path)
    assert isinstance(loaded, LoadedImage)
    assert loaded.pixels.shape == (20, 40, 3)
    assert loaded.pixels.dtype == np.uint8
    assert loaded.pixels.flags.c_contiguous
    assert (loaded.width, loaded.height, loaded.scale) == (40, 20, 1.0)
    assert tuple(loaded.pixels[0, 0]) == RED
    assert tuple(loaded.pixels[-1, -1]) == BLUE


def test_open_image_is_full_size_upright_rgb(tmp_path: Path) -> None:
    path = write(tmp_path / "a.png", Image.new("LA", (40, 20), (90, 255)), "PNG", exif=exif(6))
    image = open_image(path)
    assert image.mode == "RGB"
    assert image.size == (20, 40)
    assert image.getpixel((0, 0)) == (90, 90, 90)


def test_a_fresh_process_stays_light_and_knows_every_format() -> None:
    # Plugins register on import: the first photo of a run must not depend on earlier ones.
    script = textwrap.dedent(
        """
        import io, json, sys
        from pathlib import Path
        from PIL import Image
        from beaver.images import ImageLoadError, load_image
        light = sorted({"pillow_heif", "cv2", "PIL.JpegImagePlugin"} & set(sys.modules))
        reasons = []
        for data in (b"\\xff\\xd8\\xff\\xe0" + bytes(20), b"II*\\x00" + b"\\xff" * 40):
            try:
                load_image(Path("x"), data=data)
            except ImageLoadError as error:
                reasons.append(error.reason)
        buffer = io.BytesIO()
        Image.new("RGB", (8, 4)).save(buffer, "WEBP")
        shape = list(load_image(Path("x"), data=buffer.getvalue()).pixels.shape)
        print(json.dumps([light, reasons, shape, "pillow_heif" in sys.modules]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    light, reasons, shape, heif_loaded = json.loads(result.stdout)
    assert light == []
    assert reasons == ["truncated or corrupt file"] * 2
    assert shape == [4, 8, 3]
    assert heif_loaded is False  # pillow-heif is imported for HEIF content only


def test_data_is_decoded_without_reading_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(self: Path) -> bytes:
        raise AssertionError("the file was read although its bytes were given")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    data = encode(marked(40, 20), "JPEG")
    loaded = load_image(tmp_path / "never-written.jpg", data=data)
    assert loaded.pixels.shape == (20, 40, 3)


def test_input_file_is_left_untouched(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jpg", marked(400, 300), "JPEG", exif=exif(6))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    load_image(path, max_side=100)
    open_image(path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_pillow_global_state_is_unchanged(tmp_path: Path) -> None:
    limit, truncated = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    filters = list(warnings.filters)
    (tmp_path / "bad.jpg").write_bytes(encode(marked(64, 48), "JPEG")[:200])
    for name, data in [("a.jpg", encode(marked(64, 48), "JPEG")), ("bad.jpg", None)]:
        with contextlib.suppress(ImageLoadError):
            load_image(tmp_path / name, data=data, max_side=16)
    with pytest.raises(ImageLoadError):  # over Pillow's bomb-warning threshold
        load_image(tmp_path / "big.tif", data=tiff_claiming(10_000, 10_000))
    assert (limit, truncated) == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    assert list(warnings.filters) == filters


# --- reduced-size decoding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_side", "long_side"),
    [(50, 63), (100, 125), (200, 250), (300, 500), (500, 500), (600, 1000), (2000, 1000)],
)
def test_jpeg_draft_keeps_the_long_side_at_least_max_side(
    tmp_path: Path, max_side: int, long_side: int
) -> None:
    path = write(tmp_path / "a.jpg", marked(1000, 600), "JPEG")
    loaded = load_image(path, max_side=max_side)
    assert loaded.pixels.shape[1] == long_side
    assert loaded.pixels.shape[1] >= min(max_side, 1000)
    assert (loaded.width, loaded.height) == (1000, 600)
    assert loaded.scale == pytest.approx(long_side / 1000)


@pytest.mark.parametrize(
    ("max_side", "long_side"), [(200, 200), (300, 334), (400, 500), (600, 1000), (2000, 1000)]
)
def test_other_formats_reduce_by_an_integer_factor(
    tmp_path: Path, max_side: int, long_side: int
) -> None:
    path = write(tmp_path / "a.png", marked(1000, 600), "PNG")
    loaded = load_image(path, max_side=max_side)
    assert loaded.pixels.shape[1] == long_side
    assert (loaded.width, loaded.height) == (1000, 600)


@pytest.mark.parametrize(("fmt", "suffix"), [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
def test_scale_maps_a_pixel_back_to_the_original(tmp_path: Path, fmt: str, suffix: str) -> None:
    image = Image.new("RGB", (1200, 800), BLUE)
    image.paste(RED, (880, 180, 920, 220))  # centred on (900, 200)
    path = write(tmp_path / f"a.{suffix}", image, fmt, quality=95)
    loaded = load_image(path, max_side=150)
    assert loaded.scale < 0.5
    ys, xs = np.nonzero((loaded.pixels[..., 0] > 200) & (loaded.pixels[..., 2] < 80))
    centre = ((xs.mean() + 0.5) / loaded.scale, (ys.mean() + 0.5) / loaded.scale)
    assert centre == pytest.approx((900, 200), abs=6)


# --- EXIF orientation ---------------------------------------------------------------------------

# Where the stored top-left corner lands once the photo is shown upright.
CORNER = {1: "TL", 2: "TR", 3: "BR", 4: "BL", 5: "TL", 6: "TR", 7: "BR", 8: "BL"}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    stored = marked(60, 40)
    path = write(tmp_path / "a.png", stored, "PNG", exif=exif(orientation))
    loaded = load_image(path)
    expected = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    assert np.array_equal(loaded.pixels, np.asarray(expected))
    assert red_corner(loaded.pixels) == CORNER[orientation]
    swapped = orientation >= 5
    assert (loaded.width, loaded.height) == ((40, 60) if swapped else (60, 40))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied_after_draft_decoding(tmp_path: Path, orientation: int) -> None:
    path = write(tmp_path / "a.jpg", marked(800, 400), "JPEG", exif=exif(orientation), quality=95)
    loaded = load_image(path, max_side=100)
    swapped = orientation >= 5
    assert (loaded.width, loaded.height) == ((400, 800) if swapped else (800, 400))
    assert loaded.pixels.shape == ((100, 50, 3) if swapped else (50, 100, 3))
    assert loaded.scale == pytest.approx(0.125)
    assert red_corner(loaded.pixels) == CORNER[orientation]


def test_big_endian_exif_orientation(tmp_path: Path) -> None:
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, 8, 0)
    raw = b"Exif\x00\x00MM\x00*" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)
    path = write(tmp_path / "a.jpg", marked(80, 40), "JPEG", exif=raw)
    loaded = load_image(path)
    assert (loaded.width, loaded.height) == (40, 80)
    assert red_corner(loaded.pixels) == "BL"


@pytest.mark.parametrize(
    "raw",
    [
        b"Exif\x00\x00II*\x00\xff\xff\x00\x00",  # IFD offset past the end
        b"Exif\x00\x00XX*\x00\x08\x00\x00\x00",  # unknown byte order
        b"Exif\x00\x00II*\x00" + struct.pack("<IHHHIHH", 8, 1, 0x0112, 3, 1, 9, 0),  # out of range
        b"Exif\x00\x00II*\x00" + struct.pack("<IHHHII", 8, 1, 0x0112, 4, 1, 6),  # LONG type
        b"Exif\x00\x00II*\x00" + struct.pack("<IHHHII", 8, 1, 0x0112, 2, 1, 6),  # ASCII type
        b"Exif\x00\x00II*\x00" + struct.pack("<IH", 8, 40),  # count runs past the end
    ],
)
def test_odd_exif_never_fails_the_decode(tmp_path: Path, raw: bytes) -> None:
    path = write(tmp_path / "a.jpg", marked(80, 40), "JPEG", exif=raw)
    loaded = load_image(path)
    long_type = raw.endswith(struct.pack("<HHII", 0x0112, 4, 1, 6))
    assert (loaded.width, loaded.height) == ((40, 80) if long_type else (80, 40))


def test_xmp_orientation_when_there_is_no_exif(tmp_path: Path) -> None:
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="8"/></x:xmpmeta>'
    path = write(tmp_path / "a.jpg", marked(80, 40), "JPEG", xmp=xmp)
    loaded = load_image(path)
    assert (loaded.width, loaded.height) == (40, 80)
    assert red_corner(loaded.pixels) == "BL"


def test_tiff_orientation_tag(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tif", marked(80, 40), "TIFF", tiffinfo={0x0112: 6})
    loaded = load_image(path)
    assert (loaded.width, loaded.height) == (40, 80)
    assert red_corner(loaded.pixels) == "TR"


# --- formats and colour modes -------------------------------------------------------------------


def palette_with_transparency() -> Image.Image:
    """A P image: index 0 transparent, index 1 green; left half transparent."""
    image = Image.new("P", (8, 4), 1)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.paste(0, (0, 0, 4, 4))
    image.info["transparency"] = 0
    return image


def half_transparent(mode: str, colour: tuple[int, ...]) -> Image.Image:
    """Left half fully transparent, right half opaque ``colour``."""
    image = Image.new(mode, (8, 4), colour)
    image.paste(Image.new(mode, (4, 4), (0,) * len(colour)), (0, 0))
    return image


# name -> (file bytes, suffix, expected RGB of the left and right halves)
CASES: dict[str, Callable[[], tuple[bytes, str, tuple[int, int, int], tuple[int, int, int]]]] = {
    "rgba-png": lambda: (
        encode(half_transparent("RGBA", (255, 0, 0, 255)), "PNG"),
        "png",
        WHITE,
        RED,
    ),
    "la-png": lambda: (encode(half_transparent("LA", (100, 255)), "PNG"), "png", WHITE, (100,) * 3),
    "p-transparency-png": lambda: (
        encode(palette_with_transparency(), "PNG"),
        "png",
        WHITE,
        (0, 255, 0),
    ),
    "p-transparency-gif": lambda: (
        encode(palette_with_transparency(), "GIF", transparency=0),
        "gif",
        WHITE,
        (0, 255, 0),
    ),
    "rgba-webp": lambda: (
        encode(half_transparent("RGBA", (255, 0, 0, 255)), "WEBP", lossless=True),
        "webp",
        WHITE,
        RED,
    ),
    "rgba-tiff": lambda: (
        encode(half_transparent("RGBA", (0, 0, 255, 255)), "TIFF"),
        "tif",
        WHITE,
        BLUE,
    ),
    "rgb-webp": lambda: (
        encode(Image.new("RGB", (8, 4), RED), "WEBP", lossless=True),
        "webp",
        RED,
        RED,
    ),
    "rgb-bmp": lambda: (encode(Image.new("RGB", (8, 4), BLUE), "BMP"), "bmp", BLUE, BLUE),
    "l-jpeg": lambda: (encode(Image.new("L", (8, 4), 128), "JPEG"), "jpg", (128,) * 3, (128,) * 3),
    "1-bit-png": lambda: (encode(half_transparent("1", (1,)), "PNG"), "png", (0,) * 3, WHITE),
    "1-bit-bmp": lambda: (encode(half_transparent("1", (1,)), "BMP"), "bmp", (0,) * 3, WHITE),
    "p-gif": lambda: (
        encode(Image.new("RGB", (8, 4), RED).convert("P"), "GIF"),
        "gif",
        RED,
        RED,
    ),
    "cmyk-jpeg": lambda: (
        encode(Image.new("CMYK", (8, 4), (0, 255, 255, 0)), "JPEG", quality=100),
        "jpg",
        RED,
        RED,
    ),
    "cmyk-tiff": lambda: (
        encode(Image.new("CMYK", (8, 4), (0, 0, 0, 0)), "TIFF"),
        "tif",
        WHITE,
        WHITE,
    ),
    "ycbcr-tiff": lambda: (
        encode(Image.new("RGB", (8, 4), BLUE).convert("YCbCr"), "TIFF"),
        "tif",
        BLUE,
        BLUE,
    ),
    "lab-tiff": lambda: (
        encode(Image.new("RGB", (8, 4), WHITE).convert("LAB"), "TIFF"),
        "tif",
        WHITE,
        WHITE,
    ),
    "16-bit-rgb-png": lambda: (
        png_16bit_rgb(8, 4, (65535, 32896, 0)),
        "png",
        (255, 128, 0),
        (255, 128, 0),
    ),
    "mpo-first-frame": lambda: (
        encode(
            Image.new("RGB", (8, 4), BLUE),
            "MPO",
            save_all=True,
            append_images=[Image.new("RGB", (8, 4), RED)],
        ),
        "jpg",
        BLUE,
        BLUE,
    ),
    "png-named-jpg": lambda: (encode(Image.new("RGB", (8, 4), RED), "PNG"), "jpg", RED, RED),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_formats_and_modes_become_rgb(tmp_path: Path, case: str) -> None:
    data, suffix, left, right = CASES[case]()
    path = tmp_path / f"a.{suffix}"
    path.write_bytes(data)
    for loaded in (load_image(path), LoadedImage(np.asarray(open_image(path)), 8, 4)):
        assert loaded.pixels.shape == (4, 8, 3)
        assert loaded.pixels[2, 1] == pytest.approx(left, abs=3)
        assert loaded.pixels[2, 6] == pytest.approx(right, abs=3)


def grey_values(mode: str, values: list[float], fmt: str = "TIFF") -> list[int]:
    """Decode a 1-row image of ``values`` in ``mode`` and return its 8-bit grey row."""
    dtype = np.dtype({"F": "<f4", "I": "<i4", "I;16": "<u2", "I;16B": ">u2"}[mode])
    raw = np.array(values, dtype=dtype).tobytes()
    image = Image.frombytes(mode, (len(values), 1), raw, "raw", mode if mode != "I" else "I;32")
    loaded = load_image(Path(f"a.{fmt.lower()}"), data=encode(image, fmt))
    assert np.array_equal(loaded.pixels[..., 0], loaded.pixels[..., 2])
    return [int(v) for v in loaded.pixels[0, :, 0]]


def test_16_bit_grey_is_scaled_by_range_not_clipped() -> None:
    # Pillow's own convert("L") clips: 1000 would become 255.
    assert grey_values("I;16", [0, 1000, 32768, 65535], "PNG") == [0, 4, 128, 255]
    assert grey_values("I;16", [0, 1000, 32768, 65535]) == [0, 4, 128, 255]
    assert grey_values("I;16B", [0, 1000, 32768, 65535]) == [0, 4, 128, 255]


def test_32_bit_grey_guesses_its_range() -> None:
    assert grey_values("I", [0, 100, 255]) == [0, 100, 255]
    assert grey_values("I", [0, 257, 65535]) == [0, 1, 255]
    assert grey_values("I", [-100, 0, 100]) == [0, 128, 255]  # no range fits: stretched
    assert grey_values("I", [70000, 70000]) == [0, 0]


def test_float_grey_guesses_its_range() -> None:
    assert grey_values("F", [0.0, 0.5, 1.0]) == [0, 128, 255]
    assert grey_values("F", [0.0, 2.0, 255.0]) == [0, 2, 255]
    assert grey_values("F", [0.0, float("nan"), 1.0]) == [0, 0, 255]
    assert grey_values("F", [float("nan"), float("nan")]) == [0, 0]


def test_heic_round_trip_with_orientation(tmp_path: Path) -> None:
    if not register_heif():
        pytest.skip("pillow-heif is not installed")
    try:
        data = encode(marked(64, 32), "HEIF", exif=exif(6), quality=90)
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        pytest.skip(f"pillow-heif cannot encode here: {exc}")
    path = tmp_path / "a.HEIC"
    path.write_bytes(data)
    loaded = load_image(path)
    assert (loaded.width, loaded.height) == (32, 64)
    assert red_corner(loaded.pixels) == "TR"  # rotated once, not twice
    assert load_image(tmp_path / "renamed.jpg", data=data).pixels.shape == (64, 32, 3)


def test_avif_round_trip(tmp_path: Path) -> None:
    if ".avif" not in IMAGE_SUFFIXES:
        pytest.skip("this Pillow has no AVIF codec")
    try:
        data = encode(marked(64, 32), "AVIF", quality=90)
    except (OSError, KeyError, ValueError) as exc:
        pytest.skip(f"Pillow cannot encode AVIF here: {exc}")
    loaded = load_image(tmp_path / "a.avif", data=data)
    assert (loaded.width, loaded.height) == (64, 32)
    assert red_corner(loaded.pixels) == "TL"


def test_register_heif_is_idempotent_and_reports_a_missing_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = register_heif()
    assert register_heif() is first
    monkeypatch.setattr(images, "_heif_registered", None)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import now fails
    assert register_heif() is False
    assert register_heif() is False


# --- errors -------------------------------------------------------------------------------------


def reason(path: Path, data: bytes | None = None, **kwargs: int) -> str:
    """The ImageLoadError reason for loading ``path``."""
    with pytest.raises(ImageLoadError) as caught:
        load_image(path, data=data, **kwargs)
    assert str(caught.value) == f"{path}: {caught.value.reason}"
    assert caught.value.path == path
    return caught.value.reason


def test_truncated_and_corrupt_files(tmp_path: Path) -> None:
    jpeg = encode(Image.effect_noise((256, 256), 60).convert("RGB"), "JPEG")
    png = encode(Image.effect_noise((64, 64), 60), "PNG")
    bad_crc = png[:-20] + bytes([png[-20] ^ 0xFF]) + png[-19:]
    corrupt = "truncated or corrupt file"
    assert reason(tmp_path / "a.jpg", jpeg[: len(jpeg) // 2]) == corrupt
    assert reason(tmp_path / "b.jpg", jpeg[:400], max_side=64) == corrupt
    assert reason(tmp_path / "a.png", png[: len(png) // 2]) == corrupt
    assert reason(tmp_path / "c.png", png[:60] + b"\x00" * 200 + png[260:]) == corrupt
    assert reason(tmp_path / "d.png", bad_crc) == corrupt
    assert reason(tmp_path / "e.jpg", jpeg[:100]) == corrupt  # cut inside the header
    assert reason(tmp_path / "f.png", png[:8] + b"garbage" * 8) == corrupt
    with pytest.raises(ImageLoadError):
        open_image(write_bytes(tmp_path / "g.jpg", jpeg[:500]))


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` and return the path."""
    path.write_bytes(data)
    return path


def test_memory_errors_are_not_disguised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(image: Image.Image) -> Image.Image:
        raise MemoryError

    monkeypatch.setattr(images, "_to_rgb", exhausted)
    with pytest.raises(MemoryError):
        load_image(tmp_path / "a.png", data=encode(marked(8, 4), "PNG"))


def test_content_that_is_not_an_image(tmp_path: Path) -> None:
    for name, data in [("a.jpg", b"hello, not a photo\n" * 10), ("b.png", b"\x89PNX" + b"0" * 40)]:
        assert reason(tmp_path / name, data).startswith("not an image (content is not JPEG/PNG/")


def test_unreadable_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert reason(tmp_path / "missing.jpg") == "no such file"
    (tmp_path / "folder.jpg").mkdir()
    assert reason(tmp_path / "folder.jpg") == "is a folder, not a file"
    assert reason(write_bytes(tmp_path / "empty.jpg", b"")) == "empty file"
    with pytest.raises(ImageLoadError, match="no such file"):
        open_image(tmp_path / "missing.png")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert reason(tmp_path / "secret.jpg") == "permission denied"

    def fail(self: Path) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(Path, "read_bytes", fail)
    assert reason(tmp_path / "bad-disk.jpg") == "cannot read file (input/output error)"


def test_heic_without_pillow_heif(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "register_heif", lambda: False)
    data = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    assert (
        reason(tmp_path / "IMG_0001.HEIC", data) == "HEIC support missing: pip install pillow-heif"
    )


def test_bombs_are_refused_from_the_header(tmp_path: Path) -> None:
    assert MAX_PIXELS == 250_000_000
    expected = "decompression bomb: 400 MP exceeds the 250 MP limit"
    assert reason(tmp_path / "a.png", png_claiming(20_000, 20_000)) == expected
    assert reason(tmp_path / "a.jpg", jpeg_claiming(20_000, 20_000), max_side=512) == expected


def test_bomb_limit_is_read_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    path = write(tmp_path / "a.png", marked(40, 30), "PNG")
    assert reason(path) == "decompression bomb: 0 MP exceeds the 0 MP limit"
    monkeypatch.setattr(images, "MAX_PIXELS", 1200)
    assert load_image(path).width == 40


def test_big_photos_under_the_limit_raise_no_pillow_warning(tmp_path: Path) -> None:
    # 100 MP is over Pillow's warning threshold (~89 MP); pytest turns a warning into an error.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # The JPEG's data runs out before its end marker: libjpeg fills the rest with grey.
        loaded = load_image(tmp_path / "a.jpg", data=jpeg_claiming(10_000, 10_000), max_side=1000)
        assert (loaded.width, loaded.height) == (10_000, 10_000)
        assert loaded.pixels.shape == (1250, 1250, 3)
        assert reason(tmp_path / "a.tif", tiff_claiming(10_000, 10_000)) == (
            "truncated or corrupt file"
        )
        assert reason(tmp_path / "b.png", png_claiming(10_000, 10_000)) == (
            "truncated or corrupt file"
        )


def test_pillow_own_bomb_check_becomes_a_load_error(tmp_path: Path) -> None:
    # 225 MP passes beaver's limit, but Pillow refuses TIFF strips over 2 x MAX_IMAGE_PIXELS.
    assert reason(tmp_path / "a.tif", tiff_claiming(15_000, 15_000)).startswith(
        "decompression bomb: over Pillow's"
    )


# --- real photos --------------------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.slow
def test_every_shared_photo_decodes(shared_faces: Path) -> None:
    with (shared_faces / "MANIFEST.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) > 200
    for row in rows:
        path = shared_faces / row["file"]
        loaded = load_image(path, max_side=640)
        with Image.open(path) as full:
            turned = full.getexif().get(0x0112, 1) >= 5
            upright = (full.height, full.width) if turned else full.size
        assert (loaded.width, loaded.height) == upright, row["file"]
        assert min(640, max(upright)) <= max(loaded.pixels.shape[:2]) <= max(upright)
        assert loaded.pixels.shape[1] / loaded.width == pytest.approx(
            loaded.pixels.shape[0] / loaded.height, rel=0.02
        )


def test_header_size_reads_no_pixels_and_is_none_for_junk(tmp_path: Path) -> None:
    from beaver.images import header_size

    path = tmp_path / "wide.jpg"
    Image.new("RGB", (300, 120), (10, 20, 30)).save(path)
    data = path.read_bytes()
    assert header_size(path, data) == (300, 120)
    assert header_size(tmp_path / "x.jpg", b"not an image at all") is None
