"""timm's own model test suite (tests/test_models.py of the installed timm's sdist), run on our models.

timm parametrises its tests over `timm.list_models()` and skips some checks for names matching its
non-standard filters (e.g. `*mixer_*`) or outside its module lists; we call every test that applies to a
classification model with our names directly, so none of those checks is skipped.

The suite file is looked up in $TIMM_TESTS_DIR, then in ~/.cache/dynamixer/timm-<version>/tests, and
otherwise downloaded there with `pip download timm==<version> --no-binary :all: --no-deps`. Without it
(no network) the tests are skipped, unless DYNAMIXER_REQUIRE_TIMM_TESTS=1 (set by .ci/run) makes that a failure.
"""
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
import timm

import dynamixer  # noqa: F401  (registers the models)

# every check runs on every model; the default run keeps the expensive ones (scripting, fx, pruning) to
# dynamixer_xs and leaves the 224 px models to `pytest -m slow`
MODELS = ['dynamixer_xs', 'dynamixer_xs_convstem', 'dynamixer_xs_s2stem_sum', 'dynamixer_s'] + [
    pytest.param(n, marks=pytest.mark.slow) for n in ('dynamixer_xs_convstem_sum', 'dynamixer_m', 'dynamixer_l')]
HEAVY = ['dynamixer_xs', 'dynamixer_xs_convstem'] + [
    pytest.param(n, marks=pytest.mark.slow) for n in ('dynamixer_xs_convstem_sum', 'dynamixer_xs_s2stem_sum', 'dynamixer_s', 'dynamixer_m', 'dynamixer_l')]


def _find_suite() -> Path:
    version = timm.__version__
    candidates = []
    if os.environ.get('TIMM_TESTS_DIR'):
        candidates.append(Path(os.environ['TIMM_TESTS_DIR']))
    cache = Path.home() / '.cache' / 'dynamixer' / f'timm-{version}'
    candidates.append(cache / 'tests')
    for c in candidates:
        if (c / 'test_models.py').is_file():
            return c
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, '-m', 'pip', 'download', f'timm=={version}', '--no-binary', ':all:', '--no-deps',
               '-q', '-d', tmp]
        res = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob('timm-*.tar.gz'))
        if res.returncode != 0 or not sdists:
            raise FileNotFoundError(f'could not download the timm {version} sdist: {res.stderr.strip()[-300:]}')
        with tarfile.open(sdists[0]) as tar:
            members = [m for m in tar.getmembers() if '/tests/' in m.name and m.isfile()]
            for m in members:
                m.name = 'tests/' + m.name.split('/tests/', 1)[1]
            tar.extractall(cache, members=members, filter='data')
    return cache / 'tests'


@pytest.fixture(scope='module')
def tm():
    try:
        suite = _find_suite()
    except FileNotFoundError as e:
        if os.environ.get('DYNAMIXER_REQUIRE_TIMM_TESTS') == '1':
            pytest.fail(str(e))
        pytest.skip(str(e))
    spec = importlib.util.spec_from_file_location('timm_test_models', suite / 'test_models.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def cfg_device(tm):
    return 'meta' if tm._HAS_DEVICE_CONTEXT else 'cpu'


@pytest.mark.parametrize('model_name', MODELS)
def test_timm_forward(tm, model_name):
    tm.test_model_forward(model_name, 1)


@pytest.mark.parametrize('model_name', HEAVY)
def test_timm_backward(tm, model_name):
    tm.test_model_backward(model_name, 2)


@pytest.mark.parametrize('model_name', MODELS)
def test_timm_default_cfgs(tm, model_name, cfg_device):
    tm.test_model_default_cfgs(model_name, 1, cfg_device)


@pytest.mark.parametrize('model_name', MODELS)
def test_timm_default_cfgs_non_std(tm, model_name, cfg_device):
    tm.test_model_default_cfgs_non_std(model_name, 1, cfg_device)


@pytest.mark.parametrize('model_name', HEAVY)
def test_timm_forward_torchscript(tm, model_name):
    tm.test_model_forward_torchscript(model_name, 1)


@pytest.mark.parametrize('model_name', MODELS)
def test_timm_forward_features(tm, model_name):
    tm.test_model_forward_features(model_name, 1)


@pytest.mark.parametrize('model_name', MODELS)
def test_timm_forward_intermediates_features(tm, model_name):
    tm.test_model_forward_intermediates_features(model_name, 1)


@pytest.mark.parametrize('model_name', MODELS)
def test_timm_forward_intermediates(tm, model_name):
    tm.test_model_forward_intermediates(model_name, 1)


@pytest.mark.parametrize('model_name', HEAVY)
def test_timm_prune_intermediate_layers_contract(tm, model_name):
    tm.test_prune_intermediate_layers_contract(model_name)


@pytest.mark.parametrize('model_name', HEAVY)
def test_timm_forward_fx(tm, model_name):
    tm.test_model_forward_fx(model_name, 1)


@pytest.mark.parametrize('model_name', HEAVY)
def test_timm_backward_fx(tm, model_name):
    tm.test_model_backward_fx(model_name, 2)


@pytest.mark.parametrize('model_name', HEAVY)
def test_timm_forward_fx_torchscript(tm, model_name):
    if not hasattr(tm, 'test_model_forward_fx_torchscript'):
        pytest.skip('this timm version has no fx torchscript test')
    tm.test_model_forward_fx_torchscript(model_name, 1)
