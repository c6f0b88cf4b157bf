"""inat-tf: the iNaturalist 2017 dataset → TFRecords → Keras models → Kaggle CSV / SavedModel."""

import setuptools

# Console scripts: inat-NAME runs inat_tf/commands/NAME.py (dashes as underscores), whose run()
# parses the flags without TensorFlow and then calls the implementation.
COMMANDS = ("make-sample", "build", "data-service", "train", "eval", "predict", "score", "export",
            "adjust", "quickstart", "train-geo", "classify", "overlap", "detect-train",
            "detect-eval", "detect-export")
CONSOLE_SCRIPTS = [f"inat-{name} = inat_tf.commands.{name.replace('-', '_')}:run"
                   for name in COMMANDS]

setuptools.setup(
    name="inat-tf",
    version="0.1.0",
    description=(
        "TensorFlow/Keras pipeline for the iNaturalist 2017 species classification "
        "and detection dataset."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["inat_tf*", "tfrecord_builder*", "models*"]),
    package_data={"inat_tf": ["recipes/*/*.flags"]},
    install_requires=[
        # The full `tensorflow` package (not tensorflow-cpu): GPU hosts use the same
        # package, installed as `tensorflow[and-cuda]` (see README).
        "tensorflow>=2.21,<2.22",
        "tensorflow-datasets>=4.9.9",
        "numpy>=1.26",
        "absl-py>=2.1",
        "pillow>=10.0",
        # Well-kept C libraries doing jobs better than our Python would (BUILD_NOTES.md):
        "isal>=1.6",            # gzip inflate 1.3-1.5x zlib, in a background thread
        "rapidgzip>=0.16.2",    # parallel gzip inflate from 8 cores (tfrecord_builder/sources.py)
        "google-crc32c>=1.5",   # TFRecord framing checksums
        "simplejpeg>=1.8",      # strict (warnings are errors), DCT-scaled libjpeg-turbo decode check
        "tensorboard>=2.20",    # tf.summary needs it; TensorFlow 2.21 no longer installs it
        "matplotlib>=3.8",      # the report's plots (paper Fig. 5, reliability diagram)
        "pillow-heif>=0.18",    # inat-classify reads HEIC, iPhones' default photo format
        "tensorflow-serving-api>=2.21,<2.22",  # PredictionLog protos of the warm-up file
    ],
    extras_require={
        # Detection (inat-detect-*): RetinaNet (keras-hub; its tensorflow-text dependency pins
        # TF < 2.22) and the reference COCO metrics. An extra, so that a classification-only
        # install is lighter (BUILD_NOTES.md: sizes measured).
        "detection": ["keras-hub>=0.32,<0.33", "pycocotools>=2.0.8"],
        # pytest 9.2 silently breaks xdist's --dist loadgroup (pytest-xdist issue #1386), which
        # the suite relies on to train its shared model once.
        # html5lib: the report tests parse report.html with the WHATWG algorithm (strict mode).
        # ai-edge-litert: the TFLite runtime an app's Python side uses (tf.lite.Interpreter is
        # deprecated); the phone bundle's test runs the bundle with it, as its README shows.
        "test": ["pytest>=8,<9.2", "pytest-xdist>=3.5", "html5lib>=1.1", "ai-edge-litert>=2.3"],
    },
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
