"""`python train.py fit --config configs/visual/cpu_small.yaml`: the same as `deepfake-detect train fit ...`."""

from detector.training.train import main

if __name__ == "__main__":
    main()
