#!/usr/bin/env python3
"""Small animated explainers drawn with matplotlib (shapes and colour, little text), shown in a
window that ``record.py`` records under Xvfb: ``python3 benchmarks/real/explainers.py SCENE``.

Written for the real-footage benchmark (issue #34: animation that is not a screensaver); each
scene is its own source. Needs Debian python3-matplotlib and python3-tk.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("TkAgg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.patches import Circle, Rectangle

FPS = 25


def figure(colour: str = "#f4f1e8"):
    fig = plt.figure(figsize=(8, 6), dpi=100, facecolor=colour)
    ax = fig.add_axes([0, 0, 1, 1], facecolor=colour)
    ax.set_axis_off()
    return fig, ax


def orbits():
    """Planets on circular orbits around a sun, with their trails."""
    fig, ax = figure("#0b1030")
    ax.set_xlim(-4, 4), ax.set_ylim(-3, 3), ax.set_aspect("equal")
    ax.add_patch(Circle((0, 0), 0.35, color="#ffcc33"))
    planets = [
        (0.9, 2.4, "#aaaaaa", 0.08),
        (1.5, 1.6, "#e0a060", 0.13),
        (2.1, 1.1, "#3a8fe0", 0.14),
        (2.8, 0.7, "#d04a2a", 0.11),
    ]
    dots = [ax.add_patch(Circle((r, 0), s, color=c)) for r, _, c, s in planets]
    trails = [ax.plot([], [], color=c, lw=1.5, alpha=0.6)[0] for _, _, c, _ in planets]
    for r, *_ in planets:
        ax.add_patch(Circle((0, 0), r, fill=False, color="#334", lw=0.8))

    def step(i):
        t = i / FPS
        for (r, w, _, _), dot, trail in zip(planets, dots, trails, strict=True):
            a = w * t
            dot.center = (r * np.cos(a), r * np.sin(a))
            past = np.linspace(max(0, a - 1.5), a, 40)
            trail.set_data(r * np.cos(past), r * np.sin(past))
        return dots + trails

    return fig, step


def sorting():
    """Bubble sort of coloured bars, one swap per frame."""
    fig, ax = figure()
    rng = np.random.default_rng(34)
    n = 24
    values = list(rng.permutation(np.arange(1, n + 1)))
    colours = plt.cm.viridis(np.linspace(0, 1, n + 1))
    bars = ax.bar(range(n), values, color=[colours[v] for v in values])
    ax.set_xlim(-1, n), ax.set_ylim(0, n + 2)
    swaps = []
    v = values[:]
    for _ in range(3):  # sort, shuffle, sort again: enough frames for every clip
        for end in range(n - 1, 0, -1):
            for j in range(end):
                swaps.append(j)
                if v[j] > v[j + 1]:
                    v[j], v[j + 1] = v[j + 1], v[j]
        rng.shuffle(v)
        swaps.append(-1)
    state = values[:]

    def step(i):
        j = swaps[i % len(swaps)]
        if j < 0:
            rng2 = np.random.default_rng(i)
            rng2.shuffle(state)
        elif state[j] > state[j + 1]:
            state[j], state[j + 1] = state[j + 1], state[j]
        for k, bar in enumerate(bars):
            bar.set_height(state[k])
            bar.set_color("#e04040" if j >= 0 and k in (j, j + 1) else colours[state[k]])
        return bars

    return fig, step


def waves():
    """A travelling wave built from three sine components, each drawn and summed."""
    fig, ax = figure("#ffffff")
    x = np.linspace(0, 4 * np.pi, 400)
    ax.set_xlim(0, 4 * np.pi), ax.set_ylim(-6, 4)
    comps = [(1.0, 1, 1.0, "#e07020"), (0.6, 2, -1.5, "#2080c0"), (0.35, 3, 2.2, "#30a050")]
    lines = [ax.plot([], [], color=c, lw=2)[0] for *_, c in comps]
    total = ax.plot([], [], color="#202020", lw=3)[0]
    dot = ax.add_patch(Circle((0, 0), 0.18, color="#c02060"))

    def step(i):
        t = i / FPS
        ys = []
        for (a, k, w, _), line in zip(comps, lines, strict=True):
            y = a * np.sin(k * x - w * t) + 2.6
            line.set_data(x, y - 0.0)
            ys.append(y - 2.6)
        s = sum(ys) - 3
        total.set_data(x, s)
        px = (t * 1.5) % (4 * np.pi)
        dot.center = (px, np.interp(px, x, s))
        return [*lines, total, dot]

    return fig, step


def pendulums():
    """A row of pendulums of different lengths drifting in and out of phase (a pendulum wave)."""
    fig, ax = figure("#eef4fa")
    ax.set_xlim(-4, 4), ax.set_ylim(-6.2, 0.6), ax.set_aspect("equal")
    ax.add_patch(Rectangle((-3.8, 0), 7.6, 0.25, color="#555"))
    n = 12
    xs = np.linspace(-3.3, 3.3, n)
    freqs = (20 + np.arange(n)) / 30.0
    lengths = 9.81 / (2 * np.pi * freqs) ** 2 * 9
    colours = plt.cm.plasma(np.linspace(0.1, 0.9, n))
    rods = [ax.plot([], [], color="#333", lw=1)[0] for _ in range(n)]
    bobs = [ax.add_patch(Circle((0, 0), 0.22, color=c)) for c in colours]

    def step(i):
        t = i / FPS
        for x0, f, length, rod, bob in zip(xs, freqs, lengths, rods, bobs, strict=True):
            a = 0.45 * np.cos(2 * np.pi * f * t)
            bx, by = x0 + length * np.sin(a), -length * np.cos(a)
            rod.set_data([x0, bx], [0, by])
            bob.center = (bx, by)
        return rods + bobs

    return fig, step


def life():
    """Conway's game of life on a small torus, coloured by cell age."""
    fig, ax = figure("#101010")
    rng = np.random.default_rng(7)
    grid = (rng.random((60, 80)) < 0.3).astype(int)
    age = grid.copy()
    image = ax.imshow(age, cmap="magma", vmin=0, vmax=12, interpolation="nearest", aspect="auto")

    def step(i):
        nonlocal grid, age
        if i % 150 == 149:  # reseed so the board never dies out
            grid = (rng.random(grid.shape) < 0.3).astype(int)
        nb = sum(np.roll(np.roll(grid, a, 0), b, 1) for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0))
        grid = ((nb == 3) | ((grid == 1) & (nb == 2))).astype(int)
        age = np.where(grid == 1, np.minimum(age + 1, 12), 0)
        image.set_data(age)
        return [image]

    return fig, step


SCENES = {f.__name__: f for f in (orbits, sorting, waves, pendulums, life)}


def main() -> int:
    fig, step = SCENES[sys.argv[1]]()
    fig.canvas.manager.window.wm_geometry("+0+0")
    anim = FuncAnimation(fig, step, interval=1000 / FPS, frames=None, blit=False, cache_frame_data=False)
    plt.show()
    return 0 if anim else 1


if __name__ == "__main__":
    raise SystemExit(main())
