"""What a dub leaves beside the video: manifest and stems (`deliverables`), editor timelines
(`timeline`) and captions (`srt`)."""
