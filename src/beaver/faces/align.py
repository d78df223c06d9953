"""Five-point face alignment to the ArcFace template (what every ArcFace-style embedder expects)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ARCFACE_TEMPLATE: npt.NDArray[np.float64] = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
"""Left eye, right eye, nose tip, left and right mouth corners in a 112x112 crop."""

TEMPLATE_SIZE = 112


def similarity_transform(src: npt.ArrayLike, dst: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The 2x3 least-squares similarity (rotation, uniform scale, shift) taking ``src`` to ``dst``.

    Umeyama's closed form, as scikit-image's ``SimilarityTransform.estimate`` computes it,
    reflections excluded. Raises ValueError when the points do not determine a transform.
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 2 or s.shape != d.shape or len(s) < 2:
        msg = f"need two matching (N, 2) point arrays with N >= 2, got {s.shape} and {d.shape}"
        raise ValueError(msg)
    if not (np.isfinite(s).all() and np.isfinite(d).all()):
        raise ValueError("points must be finite")
    s_mean, d_mean = s.mean(axis=0), d.mean(axis=0)
    s_c, d_c = s - s_mean, d - d_mean
    s_var = (s_c**2).sum() / len(s)
    if s_var <= 1e-12:
        raise ValueError("source points all coincide: no transform fits them")
    cov = d_c.T @ s_c / len(s)
    u, sing, vt = np.linalg.svd(cov)
    signs = np.ones(2)
    if np.linalg.matrix_rank(cov) == 1:
        # Collinear points: the zero singular value's sign is free, so pick the one
        # that keeps the rotation proper (as scikit-image does).
        signs[1] = 1.0 if np.linalg.det(u) * np.linalg.det(vt) > 0 else -1.0
    elif np.linalg.det(cov) < 0:
        signs[1] = -1.0
    rotation = u @ np.diag(signs) @ vt
    scale = float((sing * signs).sum() / s_var)
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = d_mean - scale * rotation @ s_mean
    return matrix


def template_for(size: int) -> npt.NDArray[np.float64]:
    """The ArcFace template scaled to a ``size``x``size`` crop."""
    if size <= 0:
        msg = f"crop size must be positive, got {size}"
        raise ValueError(msg)
    return ARCFACE_TEMPLATE * (size / TEMPLATE_SIZE)


def align_face(
    image_rgb: npt.NDArray[np.uint8], landmarks: npt.ArrayLike, size: int = TEMPLATE_SIZE
) -> npt.NDArray[np.uint8]:
    """Warp the face with these five landmarks onto the ArcFace template: a (size, size, 3) crop."""
    import cv2  # heavy: only when faces are actually aligned

    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        msg = f"need five (x, y) landmarks, got an array of shape {points.shape}"
        raise ValueError(msg)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        msg = f"need an (H, W, 3) uint8 image, got {image_rgb.dtype} {image_rgb.shape}"
        raise ValueError(msg)
    matrix = similarity_transform(points, template_for(size))
    # Bilinear with a black border, as insightface's norm_crop: embeddings stay comparable.
    warped = cv2.warpAffine(
        image_rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0)
    )
    return np.asarray(warped, dtype=np.uint8)
