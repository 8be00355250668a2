// The door's camera scanner. A USB or keyboard scanner needs nothing: it types the QR payload into the
// focused field and presses Enter. On a phone or tablet, where the browser can read QR codes itself
// (BarcodeDetector), a button opens the camera and submits the first ticket it sees. Elsewhere the button
// stays hidden and the code is typed.

const button = document.getElementById("scan-with-camera");
const video = document.getElementById("check-in-camera");
const form = document.querySelector(".check-in-form");
const field = form?.querySelector('input[name="code"]');

async function canScan() {
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices?.getUserMedia) return false;
  try {
    return (await BarcodeDetector.getSupportedFormats()).includes("qr_code");
  } catch {
    return false;
  }
}

async function scan() {
  const detector = new BarcodeDetector({ formats: ["qr_code"] });
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
  video.srcObject = stream;
  video.hidden = false;
  await video.play();
  const stop = () => stream.getTracks().forEach((track) => track.stop());
  // A few looks a second are plenty for a ticket held up to the camera, and spare the phone's battery.
  const look = async () => {
    try {
      const [code] = await detector.detect(video);
      if (code?.rawValue) {
        stop();
        field.value = code.rawValue;
        form.requestSubmit();
        return;
      }
    } catch {
      // A frame that could not be read: look again.
    }
    setTimeout(look, 250);
  };
  look();
}

if (button && video && form && field && (await canScan())) {
  button.hidden = false;
  button.addEventListener("click", () => {
    button.disabled = true;
    scan().catch(() => {
      button.disabled = false;
      video.hidden = true;
      field.focus();
    });
  });
}
