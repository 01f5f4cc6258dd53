"""A client for tensorflow_model_server: TF Serving's REST predict JSON ("instances", row
format) or gRPC PredictionService from tensorflow-serving-api."""

import http.client
import json
import urllib.error
import urllib.request

from tfnmt.core.errors import UserError


def rest_request(server, model, signature, sentences, version=None):
    """(url, JSON body bytes) of a TF Serving REST predict request."""
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    body = {"signature_name": signature, "instances": [{"sentences": s} for s in sentences]}
    return f"http://{server}{path}", json.dumps(body).encode("utf-8")


def parse_rest_response(payload):
    predictions = json.loads(payload)["predictions"]
    return [(p["translations"], float(p["scores"])) for p in predictions]


def grpc_request(model, signature, sentences, version=None):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version:
        request.model_spec.version.value = version
    request.inputs["sentences"].CopyFrom(
        tf.make_tensor_proto([s.encode("utf-8") for s in sentences], dtype=tf.string))
    return request


def parse_grpc_response(response):
    import tensorflow as tf

    # make_ndarray reads both encodings a server may use (string_val/float_val or tensor_content).
    translations = tf.make_ndarray(response.outputs["translations"]).tolist()
    scores = tf.make_ndarray(response.outputs["scores"]).tolist()
    return [(t.decode("utf-8"), float(s)) for t, s in zip(translations, scores)]


def translate(sentences, server, model, protocol="rest", signature="translate", version=None,
              timeout=60.0):
    if not sentences:
        return []
    if protocol == "rest":
        url, body = rest_request(server, model, signature, sentences, version)
        request = urllib.request.Request(url, data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return parse_rest_response(response.read())
        except urllib.error.HTTPError as e:
            raise UserError(f"the server answered {e.code}: {e.read().decode()[:300]}") from None
        except (urllib.error.URLError, OSError) as e:
            raise UserError(f"cannot reach {server}: {e}.") from None
        except (http.client.HTTPException, ValueError, KeyError, TypeError) as e:
            raise UserError(f"{server} did not answer as TensorFlow Serving's REST API does "
                            f"({type(e).__name__}: {str(e)[:200]}); is it the REST port, "
                            f"--protocol=grpc for the gRPC one?") from None
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(grpc_request(model, signature, sentences, version), timeout)
        except grpc.RpcError as e:
            raise UserError(f"gRPC call to {server} failed: {e.code().name}: {e.details()}") \
                from None
    return parse_grpc_response(response)
