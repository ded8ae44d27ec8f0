"""The explorer's web page (Gradio): an image in, the capsules out, their poses under sliders.

Each handler takes and returns plain values (numbers, strings, PIL pictures, an ``Inspection`` kept per
browser session in a ``gr.State``), so that they are tested without a browser; ``build`` wires them to
the page. A bad input (an empty canvas, a file that is not an image, one too large) is answered by a
message in the page and changes nothing else.
"""

import random
import time
from pathlib import Path

import gradio as gr
import torch

from capsnet.data.image_files import IMAGE_SUFFIXES, load_image, prepare_image
from capsnet.errors import ConfigError, InputError
from capsnet.explore.inspection import CapsuleInspector, Inspection
from capsnet.explore.pictures import LENGTHS_CSS, coupling_picture, enlarged, lengths_html, message_html

PREDICTED = "the predicted digit"
SUMMED, PER_TYPE = "c_ij summed over the capsule types", "c_ij, one map a capsule type"
WEIGHTED = "c_ij ||u_i|| (what each child sends), summed over the types"
VIEWS = {SUMMED: (False, False), PER_TYPE: (True, False), WEIGHTED: (False, True)}  # per type, weighted


class ExplorerPage:
    def __init__(
        self,
        inspector: CapsuleInspector,
        test_images: torch.Tensor | None = None,
        test_labels: torch.Tensor | None = None,
        pose_range: float = 0.25,
        title: str = "",
        data_problem: str = "",
    ):
        """test_images: uint8 [N, C, H, W] (None: the test set could not be read: ``data_problem`` says
        why); pose_range: each slider's reach either side of the capsule's own value."""
        self.inspector = inspector
        self.test_images, self.test_labels = test_images, test_labels
        self.pose_range = pose_range
        self.title = title
        self.data_problem = data_problem
        self.dims = inspector.pose_dim
        self.analysis_outputs = 10 + self.dims

    # The outputs of an analysis, in order: state, lengths, input, reconstruction, capsule choice, the
    # sliders, the moved capsule's image, its timing, the routing view and picture, the message.
    def _analysed(self, image: torch.Tensor, said: str) -> list:
        seen = self.inspector.inspect(image)
        capsule = seen.prediction
        routing = self._routing_picture(seen, capsule, SUMMED)
        return [
            seen,
            lengths_html(seen.lengths, seen.prediction),
            enlarged(seen.image),
            enlarged(seen.reconstruction),
            PREDICTED,
            *[0.0] * self.dims,
            enlarged(seen.reconstruction),
            "",
            SUMMED,
            routing,
            message_html(said),
        ]

    def _refused(self, reason: str) -> list:
        return [gr.skip()] * (self.analysis_outputs - 1) + [message_html(reason)]

    def from_drawing(self, value) -> list:
        """The canvas (Gradio's editor value: ``composite``, an RGBA picture) as ``src/predict.py`` reads an
        image: greyscale, inverted when dark on light, its ink centred as MNIST's digits."""
        composite = value.get("composite") if isinstance(value, dict) else value
        if composite is None:
            return self._refused("Draw a digit on the canvas.")
        try:
            image, notes = prepare_image(composite, self.inspector.image_shape, source="the canvas")
        except InputError as error:
            return self._refused(f"{error}: draw a digit first." if "blank" in str(error) else str(error))
        return self._analysed(image, "Drawn digit: " + "; ".join(notes))

    def from_file(self, path: str | None) -> list:
        """An uploaded file, read by ``src/predict.py``'s reader (size limits, formats, centring)."""
        if not path:
            return self._refused("Upload an image file.")
        name = Path(path).name  # the file's own name, not the upload folder's
        try:
            image, notes = load_image(Path(path), self.inspector.image_shape)
        except InputError as error:
            return self._refused(str(error).replace(str(path), name))
        return self._analysed(image, f"{name}: " + ("; ".join(notes) or "taken as it is"))

    def from_test_set(self, index) -> list:
        """Test image ``index``, as the test loop feeds it to the network (uint8 / 255)."""
        if self.test_images is None:
            return self._refused(f"No test images: {self.data_problem}")
        count = len(self.test_images)
        if index is None or not float(index).is_integer() or not 0 <= int(index) < count:
            return self._refused(f"A test image is a whole number from 0 to {count - 1}.")
        index = int(index)
        image = self.test_images[index].float() / 255
        return self._analysed(image, f"Test image {index} (label {int(self.test_labels[index])})")

    def random_index(self) -> int | None:
        return None if self.test_images is None else random.randrange(len(self.test_images))

    def _capsule(self, seen: Inspection, choice: str) -> int:
        return seen.prediction if choice in (PREDICTED, None) else int(choice)

    def move(self, seen: Inspection | None, choice: str, *offsets: float) -> list:
        """The chosen capsule decoded with its pose moved by the sliders' offsets, and how long it took."""
        if seen is None:
            return [gr.skip(), "Give the network an image first."]
        started = time.perf_counter()
        image = self.inspector.decode(seen.poses, self._capsule(seen, choice), torch.tensor(offsets))
        picture = enlarged(image)
        return [picture, f"decoded in {1000 * (time.perf_counter() - started):.1f} ms"]

    def routing(self, seen: Inspection | None, choice: str, view: str):
        return gr.skip() if seen is None else self._routing_picture(seen, self._capsule(seen, choice), view)

    def _routing_picture(self, seen: Inspection, capsule: int, view: str):
        per_type, weighted = VIEWS.get(view, VIEWS[SUMMED])
        maps = self.inspector.coupling_maps(seen, capsule, weighted)
        title = f"capsule {capsule}, {view}"
        return coupling_picture(maps, self.inspector.entropies(seen.couplings), title, per_type)

    def build(self) -> gr.Blocks:
        classes = self.inspector.num_classes
        with gr.Blocks(title="CapsNet explorer", analytics_enabled=False) as page:
            gr.Markdown(f"## Capsule explorer\n{self.title}")
            seen = gr.State(None)
            with gr.Row():
                with gr.Column(scale=1):
                    with gr.Tab("Draw", elem_id="canvas-tab"):
                        canvas = gr.Sketchpad(
                            type="pil",
                            image_mode="RGBA",
                            canvas_size=(280, 280),
                            fixed_canvas=True,
                            layers=False,
                            transforms=(),
                            brush=gr.Brush(colors=["#000000"], default_size=20, color_mode="fixed"),
                            label="Draw a digit (dark on light: it is inverted and centred as MNIST's)",
                            elem_id="canvas",
                        )
                    with gr.Tab("Upload", elem_id="upload-tab"):
                        # a file, not gr.Image: the reading (and refusing) is predict's, not Gradio's
                        upload = gr.File(
                            label="An image file",
                            file_types=list(IMAGE_SUFFIXES),
                            type="filepath",
                            elem_id="upload",
                        )
                    with gr.Tab("MNIST test set", elem_id="test-tab"), gr.Row():
                        index = gr.Number(label="Test image", precision=0, value=0, elem_id="test-index")
                        show = gr.Button("Show", elem_id="show-test-image")
                        pick = gr.Button("Random", elem_id="random-test-image")
                    message = gr.HTML(elem_id="message")
                with gr.Column(scale=1):
                    lengths = gr.HTML(label="Capsule lengths ||v_j||", elem_id="lengths")
                    with gr.Row():
                        seen_image = gr.Image(
                            label="What the network sees", elem_id="input-image", interactive=False
                        )
                        reconstruction = gr.Image(
                            label="Reconstruction", elem_id="reconstruction", interactive=False
                        )
            gr.Markdown(
                "### Pose of one digit capsule\nEach slider adds to one of the capsule's "
                f"{self.dims} dimensions (the paper's fig. 4 moves them by -0.25..0.25); the decoder "
                "draws the result."
            )
            with gr.Row():
                capsule = gr.Dropdown(
                    [PREDICTED, *map(str, range(classes))],
                    value=PREDICTED,
                    label="Capsule",
                    elem_id="capsule",
                )
                reset = gr.Button("Reset the sliders", elem_id="reset")
            with gr.Row():
                with gr.Column(scale=3):
                    sliders = []
                    for row in range(0, self.dims, 4):
                        with gr.Row():
                            for d in range(row, min(row + 4, self.dims)):
                                r = self.pose_range
                                sliders.append(
                                    gr.Slider(
                                        -r, r, value=0.0, step=0.01, label=f"dim {d}", elem_id=f"pose-{d}"
                                    )
                                )
                with gr.Column(scale=1):
                    moved = gr.Image(
                        label="Decoded from the moved capsule", elem_id="moved", interactive=False
                    )
                    timing = gr.Markdown(elem_id="decode-time")
            gr.Markdown(
                "### Routing\nThe coupling c_ij of each primary capsule i (a capsule type at a grid "
                "position) to the chosen digit capsule j, at each routing pass; H is the mean entropy of "
                "the primary capsules' couplings over the digit capsules (lower: more decided)."
            )
            view = gr.Radio(list(VIEWS), value=SUMMED, label="Heat map", elem_id="routing-view")
            routing = gr.Image(label="Couplings", elem_id="routing", interactive=False)

            analysed = [
                seen,
                lengths,
                seen_image,
                reconstruction,
                capsule,
                *sliders,
                moved,
                timing,
                view,
                routing,
                message,
            ]
            canvas.change(self.from_drawing, canvas, analysed, trigger_mode="always_last")
            upload.upload(self.from_file, upload, analysed)
            show.click(self.from_test_set, index, analysed)
            index.submit(self.from_test_set, index, analysed)
            pick.click(self.random_index, None, index).then(self.from_test_set, index, analysed)
            for slider in sliders:
                slider.input(
                    self.move, [seen, capsule, *sliders], [moved, timing], trigger_mode="always_last"
                )
            capsule.input(self.move, [seen, capsule, *sliders], [moved, timing]).then(
                self.routing, [seen, capsule, view], routing
            )
            reset.click(lambda: [0.0] * self.dims, None, sliders).then(
                self.move, [seen, capsule, *sliders], [moved, timing]
            )
            view.input(self.routing, [seen, capsule, view], routing)
            if self.test_images is not None:  # the page opens on test image 0, analysed
                page.load(self.from_test_set, index, analysed)
        return page


def launch(page: gr.Blocks, port: int, max_upload_bytes: int) -> None:
    """Serve ``page`` on 127.0.0.1:``port`` only, never shared, in the background (``page.close()`` ends
    it); Gradio's default look with the system's fonts, so that nothing is fetched from the internet."""
    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    try:
        page.launch(
            server_name="127.0.0.1",
            server_port=port,
            share=False,
            max_file_size=max_upload_bytes,
            prevent_thread_lock=True,
            theme=gr.themes.Default(font=system, font_mono=["ui-monospace", "monospace"]),
            css=LENGTHS_CSS,
            footer_links=[],
            quiet=True,
        )
    except OSError as error:  # the port is taken
        raise ConfigError(f"port={port}: cannot serve there ({error}); choose another with port=") from None
