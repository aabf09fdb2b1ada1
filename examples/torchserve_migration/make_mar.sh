#!/bin/sh
# Archive the trained model into model_store/nsmc_ts.mar with the real torch-model-archiver.
# Run from this folder after `python train.py`.
set -e
cd "$(dirname "$0")"
mkdir -p model_store
torch-model-archiver --model-name nsmc_ts --version 1.0 --serialized-file artifacts/model.pt --handler handler.py --extra-files tokenizer.py,artifacts/vocab.json,artifacts/index_to_name.json --config-file model-config.yaml --export-path model_store --force
