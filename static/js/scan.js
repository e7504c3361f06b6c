// Scanner feedback and the phone camera. A handheld scanner types the code and presses Enter
// (a plain form submit); this file only adds a sound for the result and, where the browser has
// the BarcodeDetector API, a camera button. Typing the code always works.
(function () {
  "use strict";
  const form = document.querySelector("form[data-scan-result]");
  if (!form) return;

  function beep(ok) {
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      const osc = ctx.createOscillator();
      osc.frequency.value = ok ? 880 : 220;
      osc.connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + (ok ? 0.12 : 0.35));
    } catch (e) { /* no sound available */ }
  }

  const result = form.getAttribute("data-scan-result");
  if (result) beep(false);
  const input = form.querySelector("input[name='code']");
  if (input) input.select();

  const button = form.querySelector("[data-camera]");
  const video = form.querySelector("[data-camera-view]");
  if (!("BarcodeDetector" in window) || !button || !video || !navigator.mediaDevices) return;
  button.hidden = false;
  button.addEventListener("click", async function () {
    const detector = new window.BarcodeDetector({ formats: ["qr_code", "code_128"] });
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    const timer = setInterval(async function () {
      const codes = await detector.detect(video).catch(() => []);
      if (codes.length) {
        clearInterval(timer);
        stream.getTracks().forEach((t) => t.stop());
        beep(true);
        input.value = codes[0].rawValue;
        form.submit();
      }
    }, 250);
  });
})();
