"""Both bundled models served side by side, selectable by name, through each build."""
import json

import numpy as np
import tritonclient.http as tc

from conftest import ROOT, Server, reference_of

INT8 = "bearing-lstm-int8"


def test_int8_model_by_name_reproduces_its_reference(server):
    meta, inputs = reference_of(INT8)
    client = tc.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=120)
    assert client.get_model_metadata(INT8)["name"] == INT8
    inp = tc.InferInput("input", [meta["count"], 1, meta["length"]], "FP32")
    inp.set_data_from_numpy(inputs[:, None, :], binary_data=True)
    logits = client.infer(INT8, [inp]).as_numpy("logits")
    np.testing.assert_allclose(logits, np.array(meta["logits"]), rtol=meta["rtol"], atol=meta["atol"])
    assert (logits.argmax(1) == np.array(meta["logits"]).argmax(1)).all()


def test_lstm_pfd_routes_serve_the_model_named_in_config():
    card = json.loads((ROOT / "models" / INT8 / "model.json").read_text())
    s = Server({"PFD_MODEL": INT8}, args=["--component", "build/pfd-edge.wasm"])
    try:
        status, info = s.http.json("GET", "/model/info")
        assert status == 200, info
        assert info["model_name"] == INT8 and info["model_type"] == card["model_type"]
        assert info["num_parameters"] == card["num_parameters"]
        size = (ROOT / "models" / INT8 / "model.onnx").stat().st_size
        assert abs(info["model_size_mb"] - size / 1048576) < 1e-9
        assert all(v is not None for v in info.values()), info
        assert s.http.json("GET", "/health/ready")[0] == 200
    finally:
        s.stop()
