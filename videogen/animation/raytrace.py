"""Rendered 3-D worlds, ray-cast in numpy: the look of CGI films, cut-scenes and GL screensavers.

Why it exists: before it, the demo's animation class was flat cartoons, pasted shaded discs and
plasma, and its models read most real animation in ``benchmarks/real`` (rendered films, game
cut-scenes, xscreensaver's GL hacks) as camera footage. What a renderer makes and those did not:
perspective, a textured ground running to a horizon, solids that occlude each other and cast
shadows, fog with depth, specular highlights, and a camera that moves through the scene. Each
frame here is ray-cast: one primary ray per pixel against spheres, turning boxes and a ground
plane, one shadow ray per ground pixel, Blinn-Phong shading and exponential fog, at half the
video's resolution (the bilinear upscale softens edges the way a renderer's anti-aliasing does).

Same contract as every renderer (``videogen.catalogue``): ``(rng, width, height, n_frames, params) -> frames``,
every random draw from the video's own RNG, taken before the first frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from videogen.difficulty import scaled
from videogen.drawing import Frames, color, gaussian, textures

_SUN = np.array([-0.5, 0.8, -0.35]) / np.linalg.norm([-0.5, 0.8, -0.35])  # towards the light, from above
_FAR = np.float32(1e9)
WORLDS = ("meadow", "checker", "void", "deep", "room")  # ground + sky + fog; see _world


@dataclass
class Solid:
    """A sphere (``half`` = radius) or a box turning about its vertical axis (``half`` = half-extents),
    moving as part of a group (a creature's body, head and eyes move together)."""

    kind: str
    offset: np.ndarray  # from the group's position
    half: np.ndarray
    colour: np.ndarray
    second: np.ndarray  # the pattern's other colour
    pattern: str  # plain | checker | stripes
    shine: float  # Blinn exponent; 0 = matte
    group: int


@dataclass
class Group:
    """Where a group of solids is at frame ``i``: a circle or a line on the ground, a bounce, a spin."""

    centre: np.ndarray
    radius: float
    speed: float
    phase: float
    hop: float
    hop_rate: float
    spin: float

    def position(self, i: int) -> np.ndarray:
        a = self.phase + self.speed * i
        lift = self.hop * abs(math.sin(self.hop_rate * i + self.phase))
        return self.centre + np.array([self.radius * math.cos(a), lift, self.radius * math.sin(a)])


def _rays(w: int, h: int, eye: np.ndarray, target: np.ndarray, fov: float) -> np.ndarray:
    """Unit directions ``[h*w, 3]`` of a pinhole camera at ``eye`` looking at ``target``."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    half = math.tan(fov / 2)
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    ys = 1 - (np.arange(h, dtype=np.float32) + 0.5) / h * 2
    gx, gy = np.meshgrid(xs * half * w / h, ys * half)
    d = forward[None] + gx.reshape(-1, 1) * right[None] + gy.reshape(-1, 1) * up[None]
    return (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)


def _yaw(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)


def _hit_sphere(origin: np.ndarray, d: np.ndarray, centre: np.ndarray, r: float) -> np.ndarray:
    """Distance along each ray to the sphere (``_FAR`` on a miss); ``origin`` may be one point or one per ray."""
    oc = origin - centre
    b = (d * oc).sum(-1) if oc.ndim == 2 else d @ oc
    c = (oc * oc).sum(-1) - r * r
    disc = b * b - c
    t = -b - np.sqrt(np.maximum(disc, 0))
    return np.where((disc > 0) & (t > 1e-3), t, _FAR).astype(np.float32)


def _hit_box(origin: np.ndarray, d: np.ndarray, centre: np.ndarray, half: np.ndarray, turn: np.ndarray):
    """Slab test in the box's own frame: (distance or ``_FAR``, index of the face's axis, sign of its normal)."""
    local_o = (origin - centre) @ turn  # row vectors: x @ R is R^T x
    local_d = d @ turn
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(local_d) < 1e-9, 1e-9, local_d)
        t1, t2 = (-half - local_o) * inv, (half - local_o) * inv
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_in, t_out = near.max(-1), far.min(-1)
    axis = near.argmax(-1)
    hit = (t_out > np.maximum(t_in, 1e-3)) & (t_in > 1e-3)
    sign = -np.sign(np.take_along_axis(local_d, axis[:, None], 1)[:, 0])
    return np.where(hit, t_in, _FAR).astype(np.float32), axis, sign


def _value_noise(rng: np.random.Generator, size: int = 128, octaves: int = 4) -> np.ndarray:
    """A tileable greyscale noise texture in [0, 1]: octaves of upsampled random grids."""
    out = np.zeros((size, size), np.float32)
    for k in range(octaves):
        cells = 4 * 2**k
        grid = rng.uniform(0, 1, (cells, cells)).astype(np.float32)
        up = np.asarray(Image.fromarray((grid * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC), np.float32)
        out += up / 255 / 2**k
    return (out - out.min()) / (np.ptp(out) + 1e-6)


def _ground(kind: str, a: tuple | np.ndarray, b: tuple | np.ndarray, scale: float) -> dict:
    """A ground texture: ``kind`` (noise | checker | tiles) between colours ``a`` and ``b``, ``scale`` world units."""
    return {"kind": kind, "a": np.asarray(a, np.float32), "b": np.asarray(b, np.float32), "scale": scale}


def _world(rng: np.random.Generator, kind: str, photo_ground: int | None) -> dict:
    """Ground texture, sky colours and fog of one world kind."""
    noise = _value_noise(rng)
    if kind == "meadow":  # a film's outdoor set: grass or sand under a blue sky, light haze
        base = (
            np.array(color(rng, 40, 140), np.float32) * [0.6, 1.2, 0.5]
            if rng.uniform() < 0.7
            else np.array([200, 180, 130], np.float32)
        )
        ground = _ground("noise", np.clip(base * 0.55, 0, 255), np.clip(base * 1.1, 0, 255), rng.uniform(2, 6))
        sky = (
            np.array([150, 190, 240], np.float32) * rng.uniform(0.8, 1.05),
            np.array([40, 90, 200], np.float32) * rng.uniform(0.7, 1.2),
        )
        fog = {"colour": sky[0], "density": rng.uniform(0.005, 0.03)}
    elif kind == "checker":  # the GL demos' tiled floor
        ground = _ground("checker", color(rng, 20, 255), color(rng, 20, 255), rng.uniform(0.8, 3))
        top = np.array(color(rng, 0, 120), np.float32)
        sky = (top * 0.5 + 60, top * 0.3)
        fog = {"colour": sky[0], "density": rng.uniform(0.01, 0.05)}
    elif kind == "void":  # a screensaver: solids floating over black or a dark gradient, no ground
        ground = None
        dark = np.array(color(rng, 0, 70), np.float32) * (rng.uniform() < 0.5)
        sky = (dark, dark * 0.3)
        fog = {"colour": np.zeros(3, np.float32), "density": 0.0}
    elif kind == "deep":  # underwater: blue-green haze swallowing everything with distance, a sandy floor
        water = np.array([10, 70, 130], np.float32) * rng.uniform(0.6, 1.2)
        ground = _ground("noise", (90, 110, 100), (160, 170, 140), rng.uniform(3, 8))
        sky = (water * 1.3, water * 0.4)
        fog = {"colour": water, "density": rng.uniform(0.06, 0.15)}
    else:  # room: a tiled floor and a back wall (the interior of a cut-scene)
        ground = _ground("tiles", color(rng, 60, 220), color(rng, 20, 120), rng.uniform(1, 2.5))
        wall = np.array(color(rng, 60, 230), np.float32)
        sky = (wall, wall * 0.8)
        fog = {"colour": wall * 0.5, "density": rng.uniform(0.0, 0.02)}
    if ground is not None and photo_ground is not None:  # confuser: a photographic texture on the ground
        ground = {"kind": "photo", "texture": textures()[photo_ground].astype(np.float32), "scale": rng.uniform(3, 8)}
    return {"ground": ground, "sky": sky, "fog": fog, "noise": noise}


def _ground_colour(ground: dict, noise: np.ndarray, p: np.ndarray) -> np.ndarray:
    x, z = p[:, 0] / ground["scale"], p[:, 2] / ground["scale"]
    if ground["kind"] == "checker":
        mask = ((np.floor(x) + np.floor(z)) % 2)[:, None]
        return ground["a"] * mask + ground["b"] * (1 - mask)
    if ground["kind"] == "tiles":
        fx, fz = x - np.floor(x), z - np.floor(z)
        grout = ((fx < 0.06) | (fz < 0.06))[:, None]
        return np.where(grout, ground["b"], ground["a"])
    if ground["kind"] == "photo":
        tex = ground["texture"]
        th, tw = tex.shape[:2]
        return tex[((z * th) % th).astype(int), ((x * tw) % tw).astype(int)]
    n = noise.shape[0]
    v = noise[((z * n) % n).astype(int), ((x * n) % n).astype(int)][:, None]
    return ground["a"] * (1 - v) + ground["b"] * v


def _pattern(solid: Solid, local: np.ndarray) -> np.ndarray:
    """The solid's colour at points given in its own (turning) frame."""
    if solid.pattern == "plain":
        return np.broadcast_to(solid.colour, local.shape)
    scale = 4.0 / float(solid.half.max())
    if solid.pattern == "checker":
        mask = (np.floor(local * scale).sum(-1) % 2)[:, None]
    else:  # stripes
        mask = (np.floor(local[:, 1] * scale) % 2)[:, None]
    return solid.colour * mask + solid.second * (1 - mask)


def _creature(rng: np.random.Generator, group: int, size: float) -> list[Solid]:
    """A cartoon creature: a body, a head, two eyes with pupils (the rendered characters of films and toys)."""
    skin = np.array(color(rng, 40, 255), np.float32)
    white, black = np.full(3, 245, np.float32), np.full(3, 15, np.float32)
    head = size * rng.uniform(0.5, 0.8)
    parts = [
        Solid(
            "sphere", np.array([0, size, 0], np.float32), np.full(3, size, np.float32), skin, skin, "plain", 12, group
        ),
        Solid(
            "sphere",
            np.array([0, 2 * size + head * 0.6, 0], np.float32),
            np.full(3, head, np.float32),
            skin,
            skin,
            "plain",
            12,
            group,
        ),
    ]
    for side in (-1, 1):
        eye = np.array([side * head * 0.4, 2 * size + head * 0.8, -head * 0.8], np.float32)
        parts.append(Solid("sphere", eye, np.full(3, head * 0.3, np.float32), white, white, "plain", 40, group))
        parts.append(
            Solid(
                "sphere",
                eye + np.array([0, 0, -head * 0.22], np.float32),
                np.full(3, head * 0.14, np.float32),
                black,
                black,
                "plain",
                40,
                group,
            )
        )
    return parts


def _solids(rng: np.random.Generator, params: dict) -> tuple[list[Solid], list[Group]]:
    solids, groups = [], []
    floating = params["world"] == "void"
    for g in range(params["objects"]):
        size = float(rng.uniform(0.6, 1.8))
        centre = np.array(
            [rng.uniform(-4, 4), rng.uniform(0.5, 3) if floating else 0.0, rng.uniform(-4, 4)], np.float32
        )
        groups.append(
            Group(
                centre=centre,
                radius=float(rng.uniform(0, 3)),
                speed=float(rng.uniform(0.005, 0.04) * rng.choice([-1, 1])),
                phase=float(rng.uniform(0, 2 * math.pi)),
                hop=float(rng.uniform(0, 1.5) if rng.uniform() < 0.6 else 0.0),
                hop_rate=float(rng.uniform(0.05, 0.2)),
                spin=float(rng.uniform(0.01, 0.08) * rng.choice([-1, 1])),
            )
        )
        kind = rng.choice(
            ["creature", "sphere", "box"],
            p=[params["creatures"], (1 - params["creatures"]) / 2, (1 - params["creatures"]) / 2],
        )
        c1, c2 = np.array(color(rng, 30, 255), np.float32), np.array(color(rng, 30, 255), np.float32)
        pattern = str(rng.choice(["plain", "checker", "stripes"], p=[0.5, 0.3, 0.2]))
        if kind == "creature":
            solids += _creature(rng, g, size * 0.8)
        elif kind == "sphere":
            solids.append(
                Solid(
                    "sphere",
                    np.array([0, size, 0], np.float32),
                    np.full(3, size, np.float32),
                    c1,
                    c2,
                    pattern,
                    float(rng.choice([0, 10, 40])),
                    g,
                )
            )
        else:
            half = rng.uniform(0.4, 1.5, 3).astype(np.float32) * size
            solids.append(
                Solid("box", np.array([0, half[1], 0], np.float32), half, c1, c2, pattern, float(rng.choice([0, 8])), g)
            )
    return solids, groups


def render_scene3d(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A rendered 3-D world: solids and creatures on a meadow, a checkered floor, a tiled room, under
    water or floating in the void, filmed by a camera orbiting or tracking past them."""
    rw, rh = max(w // 2, 16), max(h // 2, 12)
    world = _world(rng, params["world"], params["photo_ground"])
    solids, groups = _solids(rng, params)
    orbit = params["camera"] == "orbit"
    near = params["world"] == "void"  # nothing to see but the solids: the camera comes closer
    distance, height = float(rng.uniform(4, 8) if near else rng.uniform(6, 12)), float(rng.uniform(1.5, 5))
    angle0, turn = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0.002, 0.012) * rng.choice([-1, 1]))
    fov = math.radians(rng.uniform(45, 70))
    zenith, horizon = world["sky"]
    fog = world["fog"]
    frame = None
    for i in range(n):
        if i % 2 and frame is not None:  # drawn on twos: each render is shown for two frames, at half the cost
            yield frame
            continue
        if orbit:
            a = angle0 + turn * i
            eye = np.array(
                [distance * math.cos(a), height + 0.5 * math.sin(i * 0.02), distance * math.sin(a)], np.float32
            )
            target = np.array([0, 1.0, 0], np.float32)
        else:  # tracking shot: the camera slides sideways past the scene
            x = -6 + 12 * i / max(n - 1, 1) * (1 if turn > 0 else -1)
            eye = np.array([x, height, -distance], np.float32)
            target = np.array([x * 0.6, 1.0, 0], np.float32)
        d = _rays(rw, rh, eye, target, fov)
        t_best = np.full(len(d), _FAR, np.float32)
        owner = np.full(len(d), -1)
        placed = []
        for k, s in enumerate(solids):
            g = groups[s.group]
            spin = _yaw(g.spin * i)
            centre = g.position(i) + s.offset @ spin.T
            placed.append((centre, spin))
            t = (
                _hit_sphere(eye, d, centre, float(s.half[0]))
                if s.kind == "sphere"
                else _hit_box(eye, d, centre, s.half, spin)[0]
            )
            closer = t < t_best
            t_best[closer], owner[closer] = t[closer], k
        sky = np.clip(d[:, 1:2] * 2, 0, 1)
        colour = horizon * (1 - sky) + zenith * sky
        if world["ground"] is not None:
            with np.errstate(divide="ignore"):
                t_ground = np.where(d[:, 1] < -1e-4, -eye[1] / d[:, 1], _FAR).astype(np.float32)
            on_ground = (t_ground < t_best) & (t_ground < 400)
            p = eye + d[on_ground] * t_ground[on_ground, None]
            lit = np.ones(len(p), np.float32)
            # shadows: one ray towards the sun per ground pixel
            for s, (centre, spin) in zip(solids, placed, strict=True):
                if s.kind == "sphere":
                    blocked = _hit_sphere(p, np.broadcast_to(_SUN, p.shape), centre, float(s.half[0])) < _FAR
                else:
                    blocked = (
                        _hit_box(p, np.broadcast_to(_SUN, p.shape).astype(np.float32), centre, s.half, spin)[0] < _FAR
                    )
                lit[blocked] = 0.45
            ground = _ground_colour(world["ground"], world["noise"], p) * (0.35 + 0.65 * _SUN[1] * lit)[:, None]
            colour[on_ground] = ground
            t_best = np.where(on_ground, t_ground, t_best)
            owner[on_ground] = -2
        for k, s in enumerate(solids):
            mask = owner == k
            if not mask.any():
                continue
            centre, spin = placed[k]
            p = eye + d[mask] * t_best[mask, None]
            local = (p - centre) @ spin
            if s.kind == "sphere":
                normal = (p - centre) / float(s.half[0])
            else:
                _, axis, sign = _hit_box(eye, d[mask], centre, s.half, spin)
                normal = np.zeros_like(p)
                normal[np.arange(len(p)), axis] = sign
                normal = normal @ spin.T
            base = _pattern(s, local)
            diffuse = np.clip(normal @ _SUN, 0, 1)[:, None]
            shade = base * (0.25 + 0.75 * diffuse)
            if s.shine:
                halfway = _SUN[None] - d[mask]
                halfway /= np.linalg.norm(halfway, axis=1, keepdims=True)
                shade = shade + 200 * np.clip((normal * halfway).sum(-1), 0, 1)[:, None] ** s.shine
            colour[mask] = shade
        if fog["density"]:
            hit = owner != -1
            keep = np.exp(-fog["density"] * t_best[hit])[:, None]
            colour[hit] = colour[hit] * keep + fog["colour"] * (1 - keep)
        small = np.clip(colour, 0, 255).astype(np.uint8).reshape(rh, rw, 3)
        frame = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))
        if params["grain"]:  # confuser: film grain over the render
            frame = np.clip(frame + gaussian(rng, params["grain"], frame.shape), 0, 255).astype(np.uint8)
        yield frame


def scene3d_params(rng: np.random.Generator, d: float) -> dict:
    """Harder: a photographic ground texture and film grain (both read as camera footage)."""
    world = str(rng.choice(WORLDS))
    return {
        "world": world,
        "camera": str(rng.choice(["orbit", "track"])),
        "objects": int(rng.integers(2, 7)),
        "creatures": float(rng.uniform(0.1, 0.6)),
        "photo_ground": int(rng.integers(len(textures())))
        if world != "void" and rng.uniform() < scaled(0.25, d)
        else None,
        "grain": float(rng.uniform(3, 8)) if rng.uniform() < scaled(0.25, d) else 0.0,
    }
