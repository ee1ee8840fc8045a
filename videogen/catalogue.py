"""The catalogue: every subcategory the generator draws, its class, its renderer and its parameters.

Categories sort into the seed's class indices: 0 animation, 1 flat_content, 2 gaming,
3 natural_content. Each class's renderers live in its own package (``videogen.animation``,
``flat_content``, ``gaming``, ``natural_content``); a renderer is ``(rng, width, height, n_frames,
params) -> frames`` (RGB uint8 ``[H, W, 3]``), every random draw from the video's own RNG, and its
parameters come from ``(rng, difficulty) -> params`` (``videogen.difficulty``).

The first thirteen rows are the first catalogue; the rest are modelled on kinds of real footage
those missed (3-D screensavers, visualisers, board and card games, terminals, documents, test
cards, explainer diagrams, fixed cameras, ray-traced 3-D worlds), added after the demo's models
failed on the real-footage benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from videogen.animation import cartoons, raytrace, screensavers
from videogen.drawing import Frames
from videogen.flat_content import office, screens
from videogen.gaming import casual, levels
from videogen.natural_content import cameras

CATEGORIES = ("animation", "flat_content", "gaming", "natural_content")

Renderer = Callable[[np.random.Generator, int, int, int, dict], Frames]


@dataclass(frozen=True)
class Subcategory:
    category: str
    name: str
    render: Renderer
    sample_params: Callable[[np.random.Generator, float], dict] = field(default=lambda rng, d: {})  # (rng, difficulty)


# A row's position is part of every video's seed (``videogen.writing.make_video``), and a class's rows,
# in this order, are dealt round-robin over its videos: append rows, never reorder them.
CATALOG: tuple[Subcategory, ...] = (
    Subcategory("animation", "cel_shapes", cartoons.render_cel_shapes, cartoons.cartoon_params),
    Subcategory("animation", "characters", cartoons.render_characters, cartoons.cartoon_params),
    Subcategory("animation", "cgi_balls", cartoons.render_cgi_balls, cartoons.cgi_balls_params),
    Subcategory("flat_content", "slides", office.render_slides, office.slides_params),
    Subcategory("flat_content", "code_scroll", office.render_code_scroll, office.code_scroll_params),
    Subcategory("flat_content", "spreadsheet", office.render_spreadsheet, office.spreadsheet_params),
    Subcategory("flat_content", "desktop", office.render_desktop, office.desktop_params),
    Subcategory("gaming", "topdown", levels.render_topdown, levels.topdown_params),
    Subcategory("gaming", "side_scroller", levels.render_side_scroller, levels.side_scroller_params),
    Subcategory("gaming", "arena", levels.render_arena, levels.arena_params),
    Subcategory("natural_content", "photo_pan", cameras.render_camera, cameras.photo_pan_params),
    Subcategory("natural_content", "handheld", cameras.render_camera, cameras.handheld_params),
    Subcategory("natural_content", "scene_cuts", cameras.render_scene_cuts, cameras.scene_cuts_params),
    # modelled on kinds of real footage the rows above missed
    Subcategory("animation", "gl_objects", screensavers.render_gl_objects, screensavers.gl_objects_params),
    Subcategory("animation", "visualiser", screensavers.render_visualiser, screensavers.visualiser_params),
    Subcategory("animation", "scene3d", raytrace.render_scene3d, raytrace.scene3d_params),
    Subcategory("flat_content", "terminal", screens.render_terminal, screens.terminal_params),
    Subcategory("flat_content", "document", screens.render_document, screens.document_params),
    Subcategory("flat_content", "test_card", screens.render_test_card, screens.test_card_params),
    Subcategory("flat_content", "diagram", screens.render_diagram, screens.diagram_params),
    Subcategory("gaming", "board_game", casual.render_board_game, casual.board_game_params),
    Subcategory("gaming", "card_game", casual.render_card_game, casual.card_game_params),
    Subcategory("gaming", "bubble_shooter", casual.render_bubble_shooter, casual.bubble_shooter_params),
    Subcategory("natural_content", "fixed_camera", cameras.render_fixed_camera, cameras.fixed_camera_params),
)


def subcategories(category: str) -> list[Subcategory]:
    return [s for s in CATALOG if s.category == category]
