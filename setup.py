"""inat-tf: the iNaturalist 2017 dataset → TFRecords → Keras models → Kaggle CSV / SavedModel."""

import setuptools

# Console scripts are added here as each command comes to exist; none is a placeholder.
CONSOLE_SCRIPTS = [
    "inat-make-sample = inat_tf.sample_download:run",
    "inat-build = tfrecord_builder.build:run",
    "inat-data-service = inat_tf.data_service:run",
    "inat-train = inat_tf.train:run",
    "inat-eval = inat_tf.evaluate:run",
    "inat-predict = inat_tf.predict:run",
    "inat-score = inat_tf.score:run",
    "inat-export = inat_tf.export:run",
    "inat-adjust = inat_tf.adjust:run",
    "inat-quickstart = inat_tf.quickstart:run",
    "inat-train-geo = inat_tf.geo.train:run",
    "inat-classify = inat_tf.classify:run",
    "inat-overlap = tfrecord_builder.overlap:run",
    "inat-detect-train = inat_tf.detection.train:run",
    "inat-detect-eval = inat_tf.detection.evaluate:run",
    "inat-detect-export = inat_tf.detection.export:run",
]

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
        "test": ["pytest>=8,<9.2", "pytest-xdist>=3.5", "html5lib>=1.1"],
    },
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
