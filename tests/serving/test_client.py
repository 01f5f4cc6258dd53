"""The serving client against loopback stand-ins for tensorflow_model_server (which cannot be
installed here): a REST server speaking TF Serving's predict JSON, and a real gRPC
PredictionService built from tensorflow-serving-api's protos. Both answer from our SavedModel."""

import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfnmt.core.config import DecodeConfig
from tfnmt.serving import client as client
from tfnmt.serving.saved_model import export_run

from tests.conftest import run_module


@pytest.fixture(scope="module")
def served(tmp_path_factory, trained_run):
    version_dir = export_run(trained_run.run_dir, str(tmp_path_factory.mktemp("m") / "tiny"),
                             "latest", DecodeConfig(beam_size=2))
    return tf.saved_model.load(version_dir)


def expected(loaded, signature, sentences):
    out = loaded.signatures[signature](sentences=tf.constant(sentences))
    return [(t.decode(), float(s)) for t, s in zip(out["translations"].numpy(),
                                                     out["scores"].numpy())]


def rest_server(loaded, requests_seen):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests_seen.append((self.path, body))
            sentences = [row["sentences"] for row in body["instances"]]
            out = loaded.signatures[body["signature_name"]](sentences=tf.constant(sentences))
            predictions = [{"translations": t.decode(), "scores": float(s)}
                           for t, s in zip(out["translations"].numpy(), out["scores"].numpy())]
            payload = json.dumps({"predictions": predictions}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_rest_request_shape():
    url, body = client.rest_request("localhost:8501", "teacher", "translate", ["a", "b"], 3)
    assert url == "http://localhost:8501/v1/models/teacher/versions/3:predict"
    assert json.loads(body) == {"signature_name": "translate",
                                "instances": [{"sentences": "a"}, {"sentences": "b"}]}


def test_rest_round_trip(served):
    seen = []
    server = rest_server(served, seen)
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        sentences = ["a b c", "l k", "Ünïcode ok"]
        got = client.translate(sentences, address, "tiny", "rest", "translate_plain")
        assert got == expected(served, "translate_plain", sentences)
        assert seen[0][0] == "/v1/models/tiny:predict"
    finally:
        server.shutdown()


def test_grpc_request_matches_serving_protos():
    request = client.grpc_request("teacher", "translate", ["a b", "c"], version=2)
    parsed = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert parsed.model_spec.name == "teacher" and parsed.model_spec.version.value == 2
    assert parsed.model_spec.signature_name == "translate"
    assert tf.make_ndarray(parsed.inputs["sentences"]).tolist() == [b"a b", b"c"]


def test_grpc_round_trip(served):
    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            sentences = tf.make_ndarray(request.inputs["sentences"])
            out = served.signatures[request.model_spec.signature_name](
                sentences=tf.constant(sentences))
            response = predict_pb2.PredictResponse()
            response.model_spec.CopyFrom(request.model_spec)
            for key, value in out.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        sentences = ["a b c d", "e"]
        got = client.translate(sentences, f"127.0.0.1:{port}", "tiny", "grpc", "translate")
        assert [t for t, _ in got] == [t for t, _ in expected(served, "translate", sentences)]
        for (_, a), (_, b) in zip(got, expected(served, "translate", sentences)):
            assert abs(a - b) < 1e-5
    finally:
        server.stop(None)


def test_unreachable_server_is_one_clear_error():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    result = run_module("tfnmt.client", f"--server=127.0.0.1:{port}", "--model=x",
                        "--timeout=5", input_text="a b\n")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: cannot reach 127.0.0.1" in result.stderr


def test_client_input_errors_are_one_line():
    for args, data, message in (
            (["--batch_size=0"], b"a b\n", "error: --batch_size must be at least 1"),
            (["--protocol=grpc"], b"a b\n\xff\n", "error: stdin line 2 is not valid UTF-8"),
            ([], b"\xfe x\n", "error: stdin line 1 is not valid UTF-8")):
        result = run_module("tfnmt.client", "--model=x", "--server=127.0.0.1:9", *args,
                            input_text=data, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert message in result.stderr.strip().splitlines()[-1], result.stderr[-2000:]
