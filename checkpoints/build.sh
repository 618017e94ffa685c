#!/usr/bin/env bash
# Rebuilds improv's shipped models from music21's bundled corpus: the base model, then each voice
# fine-tuned from it. Run from the repository root with the training extra installed
# (pip install -e ".[train]"); `checkpoints/build.sh base` or `checkpoints/build.sh folk` runs one step.
#
# Every source is named the same way in the base and in the voices: training holds out pieces
# within each source (seeded by name), so a voice's held-out pieces are held out of the base too,
# and each voice's eval table scores music neither it nor the base ever trained on.
set -euo pipefail
cd "$(dirname "$0")/.."

BACH="music21:bach"
FOLK="music21:essenFolksong music21:oneills1850 music21:ryansMammoth music21:nottingham-dataset music21:miscFolk music21:airdsAirs"
RENAISSANCE="music21:palestrina music21:monteverdi music21:josquin music21:luca music21:lusitano"
OTHER="music21:ciconia music21:trecento music21:beethoven music21:haydn music21:mozart music21:schubert music21:schumann_clara music21:schumann_robert music21:chopin music21:joplin music21:handel music21:corelli music21:cpebach music21:weber music21:verdi music21:beach music21:johnson_j_r music21:liliuokalani music21:leadSheet music21:schoenberg music21:webern"

# What every model here shares (the rest is config.yaml's defaults).
COMMON=(--set train.threads="${THREADS:-2}" --set corpus.file_timeout_s=300 --set model.cell=lstm --set model.recurrent_init=orthogonal)

step="${1:-all}"

if [[ "$step" == all || "$step" == base ]]; then
  # Every collection music21 ships that improv reads (its demos and theory exercises left out):
  # ~15,000 pieces, ~2 million events. Bigger batches and fewer epochs than a small corpus needs.
  improv train --data $BACH $FOLK $RENAISSANCE $OTHER --out checkpoints/base.pt --force "${COMMON[@]}" \
    --set train.batch_size=32 --set train.epochs=12 --set train.patience=3 --set train.warmup_steps=500 \
    --set train.lr=0.006 --set model.dropout=0.2
fi

# Voices: fine-tuned from the base on one corpus each (train --from keeps the base's network).
voice() {
  local name="$1"; shift
  local data="$1"; shift
  improv train --from checkpoints/base.pt --data $data --out "checkpoints/$name.pt" --force "${COMMON[@]}" "$@"
}
if [[ "$step" == all || "$step" == bach ]]; then
  voice bach "$BACH" --set train.epochs=30 --set train.finetune_lr=0.002
fi
if [[ "$step" == all || "$step" == folk ]]; then
  voice folk "$FOLK" --set train.epochs=8 --set train.finetune_lr=0.002 --set train.batch_size=32
fi
if [[ "$step" == all || "$step" == renaissance ]]; then
  voice renaissance "$RENAISSANCE" --set train.epochs=8 --set train.finetune_lr=0.002 --set train.batch_size=32
fi
if [[ "$step" == all || "$step" == accompany ]]; then
  # serve.mode accompany's one learned part: a small network guessing the melody note of the next
  # beat (57 inputs, 64 units, 12 outputs), trained on 120 Bach chorales that `improv eval
  # --accompany` does not play; written as improv/realtime/melody_net.py (pure data: the live path
  # reads no files). About a minute of one core.
  python -m improv.training.accompany --pieces 120 --epochs 60
fi
