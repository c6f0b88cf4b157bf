"""The tf.distribute strategy and mixed-precision policy a training job runs under, by flag.

  one_device     a single GPU, or the CPU
  mirrored       all local GPUs (or --num_cpu_devices logical CPUs, to try it on a laptop)
  multi_worker   MultiWorkerMirroredStrategy; the cluster from TF_CONFIG, or from Slurm's
                 environment (SlurmClusterResolver) when run under srun
  tpu            TPUStrategy on --tpu (a name, grpc:// address, or "local")
  auto           tpu if --tpu is given, multi_worker if TF_CONFIG or Slurm says so, mirrored with
                 several GPUs, else one_device
"""

import json
import os

import keras
import tensorflow as tf

from inat_tf import choices

STRATEGIES = choices.STRATEGIES


class DistributionError(ValueError):
  """The strategy asked for cannot be set up here; the message says what to do."""


def _in_slurm_job_with_several_tasks():
  """True inside a Slurm job step of several tasks; DistributionError for an sbatch script of
  several tasks that runs the command directly (not under srun): only srun starts the tasks
  and sets the SLURM_STEP_* variables that SlurmClusterResolver reads."""
  if int(os.environ.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in os.environ:
    return False
  if "SLURM_STEP_NUM_TASKS" not in os.environ:
    raise DistributionError(
        f"this Slurm job has {os.environ['SLURM_NTASKS']} tasks, but the command was not "
        f"started by srun, so only one of them runs: in the sbatch script write `srun inat-train "
        f"...` (one process per task), or ask for one task (#SBATCH --ntasks=1)")
  return True


def split_cpu(num_devices):
  """Splits the CPU into logical devices, so mirrored training can be tried without GPUs.

  Once TensorFlow has started, the split cannot change: a process already split into at least
  `num_devices` keeps its split (the strategy then uses the first `num_devices`), fewer raise
  DistributionError.
  """
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
  except RuntimeError:  # TensorFlow has started in this process
    have = len(tf.config.list_logical_devices("CPU"))
    if have < num_devices:
      raise DistributionError(
          f"num_cpu_devices={num_devices}: this process already runs TensorFlow on {have} CPU "
          f"device(s); set the split before anything else uses TensorFlow") from None


def make_strategy(kind="auto", tpu="", num_cpu_devices=0):
  """Returns a tf.distribute.Strategy; call before creating any tensor."""
  if kind not in STRATEGIES:
    raise DistributionError(f"distribution={kind!r}: expected one of {', '.join(STRATEGIES)}")
  if num_cpu_devices > 1:
    split_cpu(num_cpu_devices)
  if kind == "auto":
    if tpu:
      kind = "tpu"
    elif "TF_CONFIG" in os.environ or _in_slurm_job_with_several_tasks():
      kind = "multi_worker"
    elif len(tf.config.list_logical_devices("GPU")) > 1 or num_cpu_devices > 1:
      kind = "mirrored"
    else:
      kind = "one_device"
  if kind == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "local")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  if kind == "multi_worker":
    resolver = None
    if "TF_CONFIG" not in os.environ:
      if not _in_slurm_job_with_several_tasks():
        raise DistributionError("distribution=multi_worker needs a cluster: set TF_CONFIG, or "
                                "run under Slurm (srun) with several tasks")
      resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
  if kind == "mirrored":
    if tf.config.list_logical_devices("GPU"):
      return tf.distribute.MirroredStrategy()
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    devices = devices[:num_cpu_devices] if num_cpu_devices > 0 else devices
    # Logical CPUs share one memory: reducing on one of them costs nothing, and unlike the
    # collective ops it lets strategies over different device counts live in one process.
    return tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
  gpus = tf.config.list_logical_devices("GPU")
  return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def is_chief(strategy):
  """True on the one task that writes summaries, exports and the best model."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type in (None, "chief") or (task_type == "worker" and task_id == 0 and
                                          "chief" not in resolver.cluster_spec().as_dict())


def task_name(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or resolver.task_type is None:
    return "chief"
  return f"{resolver.task_type}-{resolver.task_id}"


def set_mixed_precision(strategy, enabled):
  """bfloat16 on TPU (and CPU), float16 with loss scaling on GPU; returns the policy name."""
  if not enabled:
    policy = "float32"
  elif isinstance(strategy, tf.distribute.TPUStrategy) or not tf.config.list_logical_devices(
      "GPU"):
    policy = "mixed_bfloat16"
  else:
    policy = "mixed_float16"
  keras.mixed_precision.set_global_policy(policy)
  return policy


# The class behind tf.distribute.MultiWorkerMirroredStrategy is named CollectiveAllReduceStrategy;
# users know it by the public name.
_PUBLIC_NAMES = {"CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}


def strategy_name(strategy):
  """The tf.distribute class name a user knows, e.g. MultiWorkerMirroredStrategy."""
  name = type(strategy).__name__
  return _PUBLIC_NAMES.get(name, name)


def describe(strategy):
  return json.dumps({"strategy": strategy_name(strategy),
                     "replicas": strategy.num_replicas_in_sync, "task": task_name(strategy)})
