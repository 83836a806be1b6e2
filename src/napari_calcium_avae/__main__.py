"""``python -m napari_calcium_avae``: the calcium-avae command, as ``torchrun -m`` starts it
for distributed training (docs/scaling.md)."""

from .cli import run

if __name__ == "__main__":
    run()
