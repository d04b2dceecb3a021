"""Every frame of every reference clip gets a face through the real stage path (slow: ~2100 frames)."""
import asyncio

import pytest

from stages.face import FaceConfig, FaceStage
from stages.source_file import FileSource


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_frame_of_every_clip_has_a_face(clips):
    missing = {}
    for path in sorted(clips.glob("*.mp4")):
        stage, source = FaceStage(FaceConfig(smoothing=False)), FileSource(path)
        try:
            count = 0
            while (packet := source.read()) is not None:
                count += 1
                if not stage.process(packet).face.found:
                    missing.setdefault(path.name, []).append(packet.seq)
        finally:
            stage.tracker.close()
            asyncio.run(source.close())
        assert count > 50, path.name
    assert not missing, {name: seqs[:10] for name, seqs in missing.items()}
