"""Drives `anysize serve` with the unmodified `webuiapi` client (pip install webuiapi), as an A1111 user would:
txt2img, img2img, progress polling with a live preview, and interrupt. Exits non-zero on the first failure.

    /work/venv/bin/python tools/webuiapi_check.py [--binary .build/release/anysize] [--model Tests/AnySizeTests/Fixtures/tiny-sd1]
"""
import argparse
import socket
import subprocess
import sys
import threading
import time

import webuiapi
from PIL import ImageChops


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build/release/anysize")
    parser.add_argument("--model", default="Tests/AnySizeTests/Fixtures/tiny-sd1")
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([args.binary, "serve", "--model", args.model, "--port", str(port),
                               "--api-auth", "user:pass", "--state", "/tmp/anysize-webuiapi-state"])
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("the server did not start")
                time.sleep(0.2)
        api = webuiapi.WebUIApi(host="127.0.0.1", port=port, username="user", password="pass")

        result = api.txt2img(prompt="a (lighthouse:1.2) at sunset", negative_prompt="blurry", seed=42, steps=4,
                             width=64, height=64, sampler_name="DPM++ 2M", batch_size=2)
        assert len(result.images) == 2 and result.image.size == (64, 64), result.images
        assert result.info["all_seeds"] == [42, 43], result.info
        assert "Seed: 42" in result.image.info["parameters"], result.image.info
        assert "Seed: 43" in result.images[1].info["parameters"], result.images[1].info
        print("txt2img:", result.info["infotexts"][0].replace("\n", " | "))

        # As A1111, image 2 of the batch (seed 43) is made again alone with its seed.
        alone = api.txt2img(prompt="a (lighthouse:1.2) at sunset", negative_prompt="blurry", seed=43, steps=4,
                            width=64, height=64, sampler_name="DPM++ 2M", batch_size=1)
        low, high = zip(*ImageChops.difference(alone.image.convert("RGB"), result.images[1].convert("RGB")).getextrema())
        assert max(high) <= 2, f"seed 43 alone differs from image 2 of the batch by {max(high)} levels"
        print(f"batch seeds: image 2 of the batch equals seed 43 alone within {max(high)} levels of 255")

        again = api.txt2img(prompt="a (lighthouse:1.2) at sunset", negative_prompt="blurry", seed=42, steps=4,
                            width=64, height=64, sampler_name="DPM++ 2M", batch_size=2)
        assert again.image.tobytes() == result.image.tobytes(), "the same seed gave another image"

        edited = api.img2img(images=[result.image], prompt="a lighthouse at night", denoising_strength=0.6, seed=1,
                             steps=6, width=64, height=64)
        assert edited.image.size == (64, 64) and edited.info["denoising_strength"] == 0.6, edited.info
        print("img2img:", edited.info["infotexts"][0].replace("\n", " | "))

        answer = {}
        long_run = threading.Thread(target=lambda: answer.update(
            r=api.txt2img(prompt="a long one", seed=3, steps=400, width=128, height=128, sampler_name="Euler")))
        long_run.start()
        progress = {}
        for _ in range(1000):
            progress = api.get_progress()
            if progress["state"]["sampling_step"] >= 2 and progress.get("current_image"):
                break
            time.sleep(0.05)
        assert 0 < progress["progress"] < 1 and progress["current_image"], progress
        print(f"progress: {progress['progress']:.3f}, eta {progress['eta_relative']:.1f} s, preview "
              f"{len(progress['current_image'])} base64 chars")
        api.interrupt()
        long_run.join(120)
        assert not long_run.is_alive() and answer["r"].info["anysize_interrupted"], "interrupt did not stop the run"
        print("interrupt: stopped with", len(answer["r"].images), "image")
        print("models:", [m["title"] for m in api.get_sd_models()])
        # The client's own session (with its auth), as a tool reading A1111's FastAPI document would.
        document = api.session.get(api.baseurl.rsplit("/sdapi", 1)[0] + "/openapi.json").json()
        assert document["openapi"].startswith("3.") and "/sdapi/v1/txt2img" in document["paths"], list(document)
        print("openapi:", document["openapi"], len(document["paths"]), "paths")
        print("webuiapi check: OK")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
