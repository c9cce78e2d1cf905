# Sourced by the device scripts: install the pure-Python dependencies the GPU image may lack
# (and bitsandbytes) from wheels carried in .whl/, only those missing; then set PYTHONPATH.
python3 - <<'PY' > /tmp/need.txt
import importlib.util, glob
pairs = {"simpy": "simpy", "click": "click", "rich": "rich", "markdown_it": "markdown_it_py", "mdurl": "mdurl",
         "pygments": "pygments", "tqdm": "tqdm", "yaml": "PyYAML", "pydantic": "pydantic",
         "pydantic_core": "pydantic_core", "annotated_types": "annotated_types", "typing_inspection": "typing_inspection",
         "bitsandbytes": "bitsandbytes"}
for mod, whl in pairs.items():
    if importlib.util.find_spec(mod) is None:
        found = glob.glob(f".whl/{whl}-*.whl")
        if found:
            print(" ".join(found))
PY
if [ -s /tmp/need.txt ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $(cat /tmp/need.txt) || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD/src:$PWD
