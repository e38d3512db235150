"""Writes the tabular examples' Keras model specs from the MNIST MLP's spec
(examples/mnist_mlp/model.json, written by Keras 3.15.1), changing only the
widths, activations, names and compile config, so no Keras is needed:

    python3 examples/tabular/make_specs.py
"""
import copy
import json
import pathlib

HERE = pathlib.Path(__file__).parent
TEMPLATE = json.loads((HERE.parent / "mnist_mlp" / "model.json").read_text())


def mlp(name, inputs, hidden, outputs, activation, loss, metrics):
    model = copy.deepcopy(TEMPLATE["model"])
    layers = model["config"]["layers"]
    inp, dense = layers[0], layers[1]
    inp["config"]["batch_shape"] = [None, inputs]
    out = [inp]
    width = inputs
    for i, (units, act) in enumerate([(h, "relu") for h in hidden] + [(outputs, activation)]):
        d = copy.deepcopy(dense)
        d["config"]["name"] = "dense" if i == 0 else f"dense_{i}"
        d["config"]["units"] = units
        d["config"]["activation"] = act
        d["config"]["kernel_initializer"]["config"]["seed"] = None
        d["build_config"] = {"input_shape": [None, width]}
        out.append(d)
        width = units
    model["config"]["layers"] = out
    model["config"]["name"] = name
    model["config"]["build_input_shape"] = [None, inputs]
    model["build_config"] = {"input_shape": [None, inputs]}
    compile_ = copy.deepcopy(TEMPLATE["compile"])
    compile_["loss"] = loss
    compile_["metrics"] = metrics
    return {"model": model, "compile": compile_}


specs = {
    "wine_mlp.json": mlp("wine_mlp", 13, [16], 3, "softmax", "sparse_categorical_crossentropy", ["accuracy"]),
    "diabetes_mlp.json": mlp("diabetes_mlp", 10, [32], 1, "linear", "mean_squared_error", ["mae"]),
}
for name, spec in specs.items():
    (HERE / name).write_text(json.dumps(spec, indent=2) + "\n")
