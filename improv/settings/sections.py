"""The settings, one typed section per part of improv: the dataclass defaults below are the
defaults, and the repository's commented ``config.yaml`` holds the same values (a test keeps the
two identical). Each room receives only the section it uses (the corpus loader its
``CorpusSettings``, the tokenizer its ``TokenizerSettings``, the engine its ``ServeSettings``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from improv.settings.serve_section import ServeSettings


@dataclass(frozen=True)
class TokenizerSettings:
    # Grid steps per beat for offsets and durations: 12 holds sixteenths (3) and triplets (4).
    steps_per_beat: int = 12
    # Longest offset or duration, in beats; longer gaps between notes are shortened to this.
    max_beats: float = 16.0
    # Number of velocity classes (equal-width bins over 1..127).
    velocity_bins: int = 8


@dataclass(frozen=True)
class CorpusSettings:
    # Cache parsed token arrays (keyed by file content and tokenizer settings); false = always parse.
    cache: bool = True
    # Where parsed token arrays are cached; empty = the user cache folder (~/.cache/improv/corpus).
    cache_dir: str = ""
    # Parser processes; 0 = one per CPU core.
    workers: int = 0
    # A file that takes more CPU seconds than this to parse is skipped (reported, never a hang).
    file_timeout_s: float = 60.0
    # Files larger than this (MB) are skipped unread: a real score or MIDI file is far smaller.
    max_file_mb: float = 32.0
    # Memory (MB) a parser process may allocate for one file; past it the file is skipped.
    worker_memory_mb: float = 2048.0


@dataclass(frozen=True)
class ModelSettings:
    # Recurrent cell: "lstm" (the design's stateful LSTM; tuned, README) or "gru".
    cell: Literal["lstm", "gru"] = "lstm"
    # Width of each field's embedding (pitch, offset, duration, velocity are summed).
    embed_dim: int = 128
    # LSTM hidden units per layer and number of layers.
    hidden_size: int = 256
    num_layers: int = 2
    # Dropout between layers and before the heads (training only).
    dropout: float = 0.3
    # Each head also sees the fields already sampled for this event (offset -> pitch -> ...).
    conditional_heads: bool = True
    # Initial recurrent weights: "uniform" (torch's default) or "orthogonal" (each gate's block an
    # orthogonal matrix: gradients keep their size through many steps).
    recurrent_init: Literal["uniform", "orthogonal"] = "uniform"


@dataclass(frozen=True)
class TrainSettings:
    # Sources, as for `improv corpus`: files, folders, or music21:NAME.
    data: list[str] = field(default_factory=lambda: ["music21:bach"])
    # Where the best checkpoint goes; the last one is written beside it as NAME.last.pt.
    out: str = "model.pt"
    # Stop after this many epochs, or this many optimiser steps (0 = no step limit).
    epochs: int = 60
    max_steps: int = 0
    # Sequences per batch and their length in events (truncated backpropagation through time).
    batch_size: int = 16
    chunk_len: int = 64
    # AdamW learning rate, weight decay, linear warm-up steps then cosine decay to lr * min_lr_ratio.
    lr: float = 0.008
    # ... and when fine-tuning (--from): a gentler one, so the model keeps what it knew.
    finetune_lr: float = 0.002
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    # Gradient norm clip.
    grad_clip: float = 1.0
    # Share of pieces held out for validation (split by piece, recorded in the checkpoint).
    val_fraction: float = 0.1
    # Augmentation: random transposition within +-transpose steps of transpose_by ("fifths": steps on
    # the circle of fifths, each the smallest shift to that key, so pieces keep to neighbouring key
    # signatures; "semitones"), tempo stretch within +-tempo_stretch. Stretch is off by default:
    # tokens count beats, so stretching re-quantises rhythms off the sixteenth/triplet grid
    # (measured: 43% of a stretched model's generated durations off the grid, 0% without).
    transpose: int = 1
    transpose_by: Literal["semitones", "fifths"] = "fifths"
    tempo_stretch: float = 0.0
    # How chunks are made: "stream" = each batch row runs through pieces back to back, the state
    # carried from chunk to chunk and piece to piece; "pieces" = every piece padded to whole chunks
    # and started from a zero state.
    chunking: Literal["stream", "pieces"] = "stream"
    # Zero-state restarts mid-piece (as the real-time engine primes the model mid-phrase): the share
    # of chunk boundaries where a row's state is zeroed ("stream"), or of pieces cut in two ("pieces").
    crop: float = 0.0
    # Validate (and write checkpoints) every this many steps as well as after each epoch (0 = per epoch only).
    val_every: int = 0
    # Early stopping: stop after this many validations without improvement (0 = never).
    patience: int = 10
    # Random seed for the split, the augmentation and the initial weights.
    seed: int = 0
    # "auto" picks cuda, then mps, then cpu.
    device: str = "auto"
    # CPU threads per process (0 = half the cores, shared among the training processes on this machine).
    threads: int = 0
    # ---- `improv train --pairs` (training/pairs.py): (call, answer) pairs cut as `eval --duet` cuts
    # them, the loss on the answer only; pair_bars: each side's length in bars (several: cut each way)
    pairs: bool = False
    pair_bars: list[int] = field(default_factory=lambda: [2])


@dataclass(frozen=True)
class SampleSettings:
    # Softmax temperature (>0); 1.0 samples the model as trained.
    temperature: float = 1.0
    # Keep only the k most likely classes (0 = off).
    top_k: int = 0
    # Nucleus sampling: keep the smallest set of classes whose probability reaches top_p (1.0 = off).
    top_p: float = 0.95


@dataclass(frozen=True)
class VoiceSettings:
    # The voice that plays when neither --voice nor --checkpoint is given: a shipped voice's name
    # (`improv voices` lists them) or a model file (.pt or .npz).
    default: str = "folk"
    # The voices `improv serve` loads at the start, to switch between during a set (serve.cc_voice,
    # or MIDI Program Change): names or files; empty = every shipped voice.
    live: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GenerateSettings:
    # Events to generate (exactly that many by default: see min_length).
    length: int = 500
    # Tempo of the written file when neither --bpm nor a prompt gives one.
    bpm: float = 100.0
    # General MIDI program (0 = acoustic grand piano).
    program: int = 0
    # ---- firstrun (issue 21): the length asked for ----
    # Events before the model may end the piece (its end-of-piece token is masked until then):
    # -1 = the whole length (you get the length you asked for); 0 = the model ends it when it likes.
    min_length: int = -1


@dataclass(frozen=True)
class EvalSettings:
    # Order of the Markov baseline (with back-off to shorter contexts).
    markov_order: int = 4
    # Generated samples for the statistics and their length in events.
    samples: int = 16
    sample_length: int = 256


@dataclass(frozen=True)
class DemoSettings:
    # Works the built-in performer cuts its calls from (as for `improv corpus`; one work per call).
    source: str = ""
    # Number of calls the performer plays, and each call's length in beats.
    calls: int = 6
    phrase_beats: float = 8.0
    # Every Nth call starts halfway through the answer before it, to show a barge-in (0 = never).
    barge_every: int = 3
    # Tempo of works whose score states none.
    bpm: float = 88.0
    # Beats the performer waits after an answer before the next call.
    breath_beats: float = 1.0
    # MIDI channel (1-16) of the performer's notes (improv plays on serve.channel).
    performer_channel: int = 2
    # The session is written here: performer and improv on separate tracks.
    record: str = "demo.mid"


@dataclass(frozen=True)
class RenderSettings:
    # SoundFont (.sf2/.sf3) `improv render` and the demo play MIDI files through; empty = the first
    # General MIDI SoundFont found ($IMPROV_SOUNDFONT, then the usual places of each system).
    soundfont: str = ""
    # Sample rate (Hz) of the WAV files written.
    sample_rate: int = 44100
    # The rendering is scaled so that its loudest sample is at this level (dBFS; -1 leaves 1 dB of
    # headroom for players that resample).
    peak_dbfs: float = -1.0


@dataclass(frozen=True)
class MonitorSettings:
    # Port of the live page (`--monitor` without a number; 0 = any free port).
    port: int = 8765
    # Seconds of the piano roll the page shows.
    seconds: float = 20.0


@dataclass(frozen=True)
class Settings:
    tokenizer: TokenizerSettings = field(default_factory=TokenizerSettings)
    corpus: CorpusSettings = field(default_factory=CorpusSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    sample: SampleSettings = field(default_factory=SampleSettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    generate: GenerateSettings = field(default_factory=GenerateSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)
    render: RenderSettings = field(default_factory=RenderSettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
