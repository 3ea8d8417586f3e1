"""The model, computed inside the wasm component: accuracy on fresh generator records and the
committed reference vectors."""
import numpy as np

import generator

# Seeds never used for training/validation/test of the bundled model (see its card).
FRESH_SEED = 20261127


def test_accuracy_on_fresh_records_via_batch(http):
    per_class = 10
    signals, labels = [], []
    for c in range(11):
        for j in range(per_class):
            rng = np.random.default_rng([FRESH_SEED, c, j])
            signals.append(generator.generate(c, rng).astype(np.float32).tolist())
            labels.append(c)
    predicted = []
    for start in range(0, len(signals), 32):
        status, body = http.json("POST", "/predict/batch", {"signals": signals[start:start + 32], "return_probabilities": False})
        assert status == 200, body
        predicted += [p["predicted_class"] for p in body["predictions"]]
    accuracy = np.mean(np.array(predicted) == np.array(labels))
    print(f"accuracy through the wasm component: {accuracy:.4f} on {len(labels)} records")
    assert accuracy >= 0.95


def test_reference_vectors(http, reference, card):
    meta, inputs = reference
    names = card["class_names"]
    status, body = http.json("POST", "/predict/batch", {"signals": inputs.tolist()})
    assert status == 200, body
    rtol, atol = meta["rtol"], meta["atol"]
    for i, p in enumerate(body["predictions"]):
        expected_logits = np.array(meta["logits"][i], dtype=np.float64)
        expected = np.exp(expected_logits - expected_logits.max())
        expected /= expected.sum()
        got = np.array([p["probabilities"][n] for n in names])
        assert p["predicted_class"] == int(np.argmax(expected_logits)), i
        # The LSTM_PFD API returns softmax(logits); the raw logits are compared through OIP.
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=f"reference {i}")
