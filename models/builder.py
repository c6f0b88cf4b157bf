"""`build`: a named network of the paper as a plain Keras functional model returning logits.

How: keras.applications builds the backbone (include_top=False) on an input named "image" and
loads its weights (`weights.py`); for SE networks, `keras.models.clone_model` re-runs that graph
with an SE block after each layer the spec marks, and the loaded weights are copied over; finally
the classifier (and optionally the auxiliary head) goes on top (`heads.py`).
"""

import logging
import numbers

import keras

from models import heads
from models import registry
from models import weights as weights_lib

log = logging.getLogger(__name__)

NEW_LAYER_PREFIX = "head_"
SE_LAYER_INFIX = "_se_"


def _is_integer(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_arguments(spec, num_classes, image_size, weights, aux_logits, dropout_rate,
                     head_rank):
  problems = []
  if not _is_integer(num_classes) or num_classes < 2:
    problems.append(f"num_classes={num_classes!r}: expected an integer >= 2, the number of "
                    f"classes to tell apart (e.g. num_classes=5089 for all iNat2017 species)")
  if not _is_integer(image_size) or image_size < spec.min_image_size:
    problems.append(
        f"image_size={image_size!r}: expected an integer >= {spec.min_image_size}, the smallest "
        f"input keras.applications.{spec.backbone_name} accepts; pass image_size="
        f"{spec.min_image_size} or more (its ImageNet weights were trained at "
        f"{spec.default_image_size})")
  weights_problem = weights_lib.check_weights(weights, spec)
  if weights_problem:
    problems.append(weights_problem)
  if not isinstance(aux_logits, bool):
    problems.append(f"aux_logits={aux_logits!r}: expected True or False")
  elif aux_logits and spec.aux_tap is None:
    with_aux = [n for n, s in registry.SPECS.items() if s.aux_tap]
    problems.append(f"aux_logits=True but {spec.name} has no auxiliary head: expected "
                    f"aux_logits=False, or one of {', '.join(with_aux)}")
  if dropout_rate is not None and (
      not isinstance(dropout_rate, numbers.Real) or isinstance(dropout_rate, bool)
      or not 0 <= dropout_rate < 1):
    problems.append(f"dropout_rate={dropout_rate!r}: expected None (the network's default) or a "
                    f"number in [0, 1), e.g. dropout_rate=0.5")
  if not _is_integer(head_rank) or head_rank < 0:
    problems.append(f"head_rank={head_rank!r}: expected 0 (a full classifier) or a positive "
                    f"integer, the rank of the factorised classifier (e.g. head_rank=256)")
  elif _is_integer(num_classes) and head_rank >= num_classes:
    problems.append(f"head_rank={head_rank}: a rank-{head_rank} bottleneck before {num_classes} "
                    f"classes restricts nothing and adds parameters: expected head_rank < "
                    f"num_classes, or 0 for the full classifier")
  if keras.config.image_data_format() != "channels_last":
    problems.append(f"Keras image_data_format is {keras.config.image_data_format()!r}: expected "
                    f"'channels_last'; call keras.config.set_image_data_format('channels_last')")
  if problems:
    raise ValueError(f"Invalid models.build arguments for {spec.name!r}: " + "; ".join(problems))


def build(name, num_classes, image_size, *, weights=None, aux_logits=False, dropout_rate=None,
          head_rank=0):
  """The network `name` (see MODEL_NAMES) for num_classes classes and square image_size inputs.

  Args:
    name: e.g. "inception_v3_se", "resnet50_drp", "mobilenet_v1".
    num_classes: >= 2.
    image_size: input height = width in pixels, at least `min_image_size(name)`.
    weights: None (random), "imagenet" (Keras's published ImageNet weights, downloaded as
      keras.applications does), or the path of a weights file of the keras.applications backbone
      with include_top=False (`*.weights.h5` from save_weights, or a legacy `*.h5`).
    aux_logits: Inceptions only: add TF-slim's auxiliary classifier.
    dropout_rate: dropout before the classifier; None = the network's default (0.5 for `*_drp`,
      1e-3 for mobilenet_v1 as keras.applications, none otherwise), 0 = no dropout layer.
    head_rank: 0, or R (1 <= R < num_classes) for a rank-R factorised classifier
      (`head_bottleneck` then `head_logits`, heads.classifier); the auxiliary head stays full
      (it only helps training and is not saved).

  Returns:
    A keras.Model on input "image" (float, image_size x image_size x 3, already normalised by
    `preprocess_input(name)`) returning float32 logits, or with aux_logits the dict
    {"logits": ..., "aux_logits": ...}.
  """
  spec = registry.spec(name)
  _check_arguments(spec, num_classes, image_size, weights, aux_logits, dropout_rate, head_rank)
  image = keras.Input((image_size, image_size, 3), name="image")
  backbone = weights_lib.backbone(spec, image, weights)
  num_loaded = sum(1 for layer in backbone.layers if layer.weights)
  aux_tap = spec.aux_tap
  if spec.se_block_name:
    backbone = _insert_se_blocks(backbone, spec)
    if spec.se_block_name(aux_tap):  # the tapped module has an SE block: tap its output
      aux_tap = spec.se_block_name(aux_tap) + "_scale"

  rate = spec.default_dropout_rate if dropout_rate is None else dropout_rate
  logits = heads.classifier(backbone.output, num_classes, rate, head_rank=head_rank)
  outputs = logits
  if aux_logits:
    aux = heads.aux_logits(backbone.get_layer(aux_tap).output, num_classes)
    outputs = {"logits": logits, "aux_logits": aux}
  model = keras.Model(backbone.inputs[0], outputs, name=spec.name)

  if weights is not None:
    added = [layer.name for layer in new_layers(model) if layer.weights]
    source = "Keras's ImageNet weights" if weights == "imagenet" else f"weights file {weights}"
    log.info("%s: loaded %s into all %d backbone layers with weights (keras.applications.%s); "
             "%d new layers keep their initialisation, not in the weights: %s", spec.name, source,
             num_loaded, spec.backbone_name, len(added), ", ".join(added))
  return model


def _insert_se_blocks(backbone, spec):
  """A copy of `backbone` with an SE block after each layer the spec marks, weights copied.

  keras.models.clone_model re-runs the graph on a new input; its call_function hook inserts the
  blocks. Layers are cloned (same config, so same names and dtype policies) rather than reused: a
  reused layer would keep its call in the old graph as node 0, and `layer.output` would return
  that disconnected tensor.
  """
  def call_function(layer, *args, **kwargs):
    outputs = layer(*args, **kwargs)
    block = spec.se_block_name(layer.name)
    return heads.squeeze_excite(outputs, block) if block else outputs

  pairs = []

  def clone_function(layer):
    clone = layer.__class__.from_config(layer.get_config())
    pairs.append((layer, clone))
    return clone

  image = keras.Input(backbone.inputs[0].shape[1:], name=backbone.inputs[0].name)
  rewired = keras.models.clone_model(backbone, input_tensors=[image], clone_function=clone_function,
                                     call_function=call_function)
  for layer, clone in pairs:  # all built now: clone_model has called them
    for clone_weight, weight in zip(clone.weights, layer.weights, strict=True):
      clone_weight.assign(weight.value)  # variable to variable, bit-exact, no numpy round trip
  return rewired


def new_layers(model):
  """The layers of a `build` model that ImageNet weights do not cover: classifier, aux head, SE.

  Found by name: this package names them `head_*` or `<block>_se_*`, names no keras.applications
  backbone layer has. Includes weightless ones (pooling, dropout, multiply).
  """
  return [layer for layer in model.layers
          if layer.name.startswith(NEW_LAYER_PREFIX) or SE_LAYER_INFIX in layer.name]
