"""Decode plans: only the groups of pictures that hold sampled frames, from the probe's keyframe index.

Sequential decoding numbers frames in the order the decoder returns them (presentation order)
and pays for every frame from the start up to the last sampled one. The probe already demuxes
every packet; it keeps each packet's pts and keyframe flag (``PacketIndex``), and with them:

- frame number ``k`` is the packet with the ``k``-th smallest pts (one frame per packet, which
  the decoder's output is checked against as it comes);
- a *seek point* is a keyframe that every packet before it (in decode order) precedes in
  presentation too: decoding from there yields every later frame exactly as decoding from the
  start does. An open GOP's leading pictures (decoded after their keyframe, shown before it)
  are never taken from a segment that starts at that keyframe;
- ``make_plan`` groups the sampled frames into segments: it continues forward while the next
  sampled frame's seek point lies within what it decodes anyway, and seeks when a keyframe
  lies between (so no group of pictures is ever decoded twice, and a keyframe every 10 s costs
  no more than sequential decoding).

``decode_segments`` runs a plan and checks everything it relied on: after a seek the first
packet must be a seek point at or before the planned one, packets must come in the probe's
order, and frames must come out with exactly the pts ranks the index predicts, one after
another. Any mismatch raises ``PlanMismatch``; the caller then decodes sequentially, so a
container whose timestamps cannot be trusted costs time, never a different frame.

Within a segment, an H.264 decoder drops the pictures that are neither wanted nor referenced by
any other (``SKIPS_NONREF``): the frames it returns are the same, and only those unwanted ranks
may be missing from its output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import av
import numpy as np

# Decoders whose AVDISCARD_NONREF drops only pictures that no other picture references (H.264: nal_ref_idc 0),
# so a plan skips the unwanted ones and every other frame decodes as it would have: half the pictures of an
# x264 stream with B-frames, a quarter of decoding's CPU on the clips of benchmarks/real (2.1 -> 1.55 ms per
# sampled frame, benchmarks/RESULTS.md, issue 50). Not HEVC: its sub-layer non-reference pictures may be
# referenced by higher temporal sub-layers.
SKIPS_NONREF = frozenset({"h264"})

# Seek only when that skips at least this many packets: a seek flushes the decoder, whose frame
# threads and reorder delay then refill; a few packets are cheaper to decode than to jump over.
MIN_SKIP = 8


class PlanMismatch(RuntimeError):
    """The file did not decode as its index predicted; the caller falls back to sequential decoding."""


class SeekOvershoot(PlanMismatch):
    """A seek landed past the keyframe it aimed at (before anything was decoded)."""


@dataclass(frozen=True, eq=False)
class PacketIndex:
    """The video stream's packets (those with data) in decode order, as the probe demuxed them."""

    pts: np.ndarray  # int64 [N]; meaningless where ``problem`` says the timestamps are missing
    keyframe: np.ndarray  # bool [N]
    dts: np.ndarray | None = None  # int64 [N], or None where a packet had none
    problem: str | None = None  # why planning from these timestamps is unsafe (None: it is safe)
    order: np.ndarray = field(init=False, repr=False)  # int64 [N]: decode position of frame k
    ranks: dict[int, int] = field(init=False, repr=False)  # pts -> frame number
    seek_points: np.ndarray = field(init=False, repr=False)  # int64: decode positions, increasing pts

    def __post_init__(self) -> None:
        pts, key = self.pts, self.keyframe
        problem = self.problem
        order = np.argsort(pts, kind="stable").astype(np.int64)
        if problem is None and len(pts):
            if len(np.unique(pts)) < len(pts):
                problem = "duplicate packet timestamps"
            elif not key[0]:
                problem = "the first packet is not a keyframe"
            elif pts[0] != pts.min():
                problem = "frames shown before the first keyframe (open GOP at the start)"
        earlier_max = np.maximum.accumulate(np.concatenate([[np.iinfo(np.int64).min], pts[:-1]]))
        seek_points = np.flatnonzero(key & (pts > earlier_max)) if problem is None else np.zeros(0, np.int64)
        object.__setattr__(self, "problem", problem)
        object.__setattr__(self, "order", order)
        object.__setattr__(self, "ranks", {int(p): k for k, p in enumerate(pts[order])} if problem is None else {})
        object.__setattr__(self, "seek_points", seek_points.astype(np.int64))

    def __len__(self) -> int:
        return len(self.pts)

    @classmethod
    def from_packets(cls, packets: Iterable[av.Packet]) -> PacketIndex:
        """Index the packets with data (the probe's frame count); the flush packet has none."""
        pts, dts, key, problem = [], [], [], None
        for packet in packets:
            if not packet.size:
                continue
            if packet.pts is None:
                problem = "packets without timestamps"
            if packet.is_corrupt:
                problem = problem or "a packet flagged corrupt"
            pts.append(-1 if packet.pts is None else int(packet.pts))
            dts.append(packet.dts)
            key.append(bool(packet.is_keyframe))
        known_dts = None if None in dts else np.asarray(dts, np.int64)
        return cls(np.asarray(pts, np.int64), np.asarray(key, bool), known_dts, problem)

    def seek_point_for(self, frame: int) -> int:
        """Decode position of the last seek point at or before frame number ``frame`` (presentation)."""
        starts = self.pts[self.seek_points]
        i = int(np.searchsorted(starts, self.pts[self.order[frame]], side="right")) - 1
        return int(self.seek_points[i])


@dataclass(frozen=True)
class Segment:
    """One run of decoding: from the seek point at decode position ``start`` until ``targets`` are out."""

    start: int
    seek: bool  # False only for a run from the start of the file (nothing to seek to)
    targets: tuple[int, ...]  # frame numbers, increasing
    end: int  # the last decode position any target needs

    def packets(self) -> int:
        return self.end - self.start + 1


def make_plan(index: PacketIndex, frames: Iterable[int]) -> list[Segment]:
    """Segments covering the frame numbers in ``frames`` that exist (``0 <= k < len(index)``)."""
    if index.problem is not None:
        raise ValueError(f"no plan from untrusted timestamps: {index.problem}")
    wanted = sorted({int(k) for k in frames if 0 <= int(k) < len(index)})
    segments: list[Segment] = []
    start = end = -1
    targets: list[int] = []
    for k in wanted:
        point, position = index.seek_point_for(k), int(index.order[k])
        if point - (end + 1) < MIN_SKIP:  # no keyframe far enough past what this run decodes anyway
            start = 0 if start < 0 else start  # (the first run: from the start of the file)
            targets.append(k)
            end = max(end, position)
            continue
        if targets:
            segments.append(Segment(start, start > 0, tuple(targets), end))
        start, end, targets = point, position, [k]
    if targets:
        segments.append(Segment(start, start > 0, tuple(targets), end))
    return segments


def plan_cost(segments: list[Segment]) -> int:
    """Packets a plan decodes (at least; the decoder's reorder delay adds a few per segment)."""
    return sum(s.packets() for s in segments)


def decode_segments(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    index: PacketIndex,
    segments: list[Segment],
    convert: Callable[[av.VideoFrame], np.ndarray],
) -> dict[int, np.ndarray]:
    """Run ``segments`` on an open container; ``convert`` each target frame. Raises ``PlanMismatch``."""
    out: dict[int, np.ndarray] = {}
    positions = {int(p): i for i, p in enumerate(index.pts)}
    is_seek_point = np.zeros(len(index), bool)
    is_seek_point[index.seek_points] = True
    by_dts = False  # seek to the keyframe's pts (an index's time: MP4, Matroska, AVI) until that overshoots
    for segment in segments:
        while True:
            if segment.seek:
                times = index.dts if by_dts else index.pts
                container.seek(int(times[segment.start]), stream=stream, backward=True, any_frame=False)
            try:
                out.update(_run_segment(container, stream, index, segment, positions, is_seek_point, convert))
                break
            except SeekOvershoot:
                if by_dts or index.dts is None:
                    raise
                by_dts = True  # a search by decode time (MPEG-TS): aim at the keyframe's dts instead
    return out


def _run_segment(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    index: PacketIndex,
    segment: Segment,
    positions: dict[int, int],
    is_seek_point: np.ndarray,
    convert: Callable[[av.VideoFrame], np.ndarray],
) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    wanted, last = set(segment.targets), segment.targets[-1]
    expected = first_pts = next_rank = None
    context = stream.codec_context
    skipping = context.name in SKIPS_NONREF  # unwanted non-reference pictures are dropped, not decoded
    discard = None
    for packet in container.demux(stream):
        if packet.size and skipping:  # set before the packet is sent: the decoder reads it per picture
            mode = "DEFAULT" if index.ranks.get(-2 if packet.pts is None else int(packet.pts)) in wanted else "NONREF"
            if mode != discard:
                context.skip_frame = discard = mode
        if packet.size:
            position = positions.get(-2 if packet.pts is None else int(packet.pts))
            if expected is None:  # demuxed, not yet decoding: wait for the seek point the plan starts at
                if position is not None and position > segment.start:
                    raise SeekOvershoot(f"the seek landed after position {segment.start} (at packet pts={packet.pts})")
                if position is None or not is_seek_point[position]:
                    continue  # an index-less seek (MPEG-TS) lands before a keyframe: skip, undecoded
                expected, first_pts = position, int(index.pts[position])
                next_rank = index.ranks[first_pts]
            if position != expected:
                raise PlanMismatch(f"packet pts={packet.pts} where the probe had position {expected}")
            expected += 1
        elif expected is None:
            raise PlanMismatch(f"the stream ended before position {segment.start}")
        for frame in packet.decode():
            if frame.pts is None:
                raise PlanMismatch("a decoded frame without pts")
            if frame.pts < first_pts:  # a leading picture of the keyframe we started at
                continue
            rank = index.ranks.get(int(frame.pts))
            skipped = range(next_rank, next_rank if rank is None else rank)  # only unwanted ones may be missing
            if rank is None or rank < next_rank or (skipped and not (skipping and wanted.isdisjoint(skipped))):
                raise PlanMismatch(f"decoded frame pts={frame.pts} is frame {rank}, expected frame {next_rank}")
            next_rank = rank + 1
            if rank in wanted:
                out[rank] = convert(frame)
            if rank >= last:
                return out
    raise PlanMismatch(f"the stream ended before frame {last}")
