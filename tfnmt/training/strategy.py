"""Chooses a tf.distribute strategy by name."""

import json
import os

import tensorflow as tf

from tfnmt.core.errors import UserError

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")


def make_strategy(name, devices=None, tpu_address=""):
    """default: no distribution; one_device: the first (or given) device; mirrored: all local
    GPUs or the given devices; multi_worker: workers from TF_CONFIG; tpu: the TPU at tpu_address."""
    if name == "default":
        return tf.distribute.get_strategy()
    if devices:
        known = {d.name.lower().replace("/job:localhost/replica:0/task:0/", "/")
                 for d in tf.config.list_logical_devices()}
        for device in devices:
            wanted = "/device:" + device.lower().lstrip("/").replace("device:", "")
            if wanted not in known:
                raise UserError(f"device {device} is not on this machine (it has "
                                f"{', '.join(sorted(known))}).")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy((devices or ["/cpu:0"])[0])
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices or None)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise UserError("--distribution=multi_worker needs the TF_CONFIG environment variable.")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError:
            raise UserError("TF_CONFIG is not valid JSON.") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise UserError(f"unknown distribution {name!r}; choose one of {', '.join(STRATEGIES)}.")


def is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and
                                             resolver.task_id == 0)
