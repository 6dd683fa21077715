#!/usr/bin/env bash
# The three songs of the quality measurements, as files under runs/quality/songs/ (not in git).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p runs/quality/songs
python -c "
from framegen import audio, synth
audio.write_wav('runs/quality/songs/demo-song.wav', synth.demo_song(), synth.DEMO_RATE)
"
# apt-get install -y drascula-music
for t in track1 track11; do
  ln -sf /usr/share/scummvm/drascula/audio/$t.ogg runs/quality/songs/drascula-$t.ogg
done
ls -l runs/quality/songs
