"""Reading and writing media: finding and running ffmpeg, decoding and writing audio, muxing the dub."""
