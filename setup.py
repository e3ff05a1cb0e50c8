from setuptools import find_packages, setup

with open('dynamixer/__init__.py') as f:
    version = next(line.split("'")[1] for line in f if line.startswith('__version__'))

setup(
    name='dynamixer',
    version=version,
    description='DynaMixer vision MLP (ICML 2022) for timm: models, training, validation, benchmarks',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    license='MIT',
    packages=find_packages(include=['dynamixer', 'dynamixer.*']),
    package_data={'dynamixer': ['weights/*.safetensors']},
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.4',
        'torchvision',
        'timm>=1.0.29,<1.1',
        'pyyaml',
        'fvcore',
        'safetensors',
    ],
    extras_require={'test': ['pytest'], 'plots': ['matplotlib']},
)
