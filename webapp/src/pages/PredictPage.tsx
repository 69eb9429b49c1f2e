// Drop a plate image; see its masks, root tips with plant numbers, traits and certainty.
// One request: POST /v1/predict?masks=true&preview=true (the preview is the image as
// the pipeline read it, so TIFF and 16-bit files show too).
import { ErrorAlert, StatusLine } from "../components/Messages";
import { useState, type DragEvent } from "react";
import { message, request, type Prediction } from "../api";
import PlateViewer from "../components/PlateViewer";
import PlantsTable from "../components/PlantsTable";

const ACCEPT = ".png,.jpg,.jpeg,.tif,.tiff,image/png,image/jpeg,image/tiff";

export default function PredictPage() {
  const [pred, setPred] = useState<Prediction | null>(null);
  const [name, setName] = useState<string>("");
  const [status, setStatus] = useState<string>("");
  const [error, setError] = useState<string | null>(null);
  const [over, setOver] = useState(false);

  async function send(file: File) {
    setError(null);
    setPred(null);
    setName(file.name);
    setStatus(`Predicting ${file.name}…`);
    const form = new FormData();
    form.append("image", file, file.name);
    try {
      const t0 = performance.now();
      const p = await request<Prediction>("POST", "/v1/predict?masks=true&preview=true", form);
      setPred(p);
      const flagged = p.plants.filter((x) => x.low_confidence).length;
      setStatus(
        `${file.name}: ${p.plants.length} plants, ${flagged} flagged low confidence, ` +
          `${Math.round(performance.now() - t0)} ms (model ${p.model.name ?? ""} ${p.model.version ?? ""}).`,
      );
    } catch (exc) {
      setStatus("");
      setError(`${file.name}: ${message(exc)}`);
    }
  }

  function onDrop(e: DragEvent) {
    e.preventDefault();
    setOver(false);
    const file = e.dataTransfer.files[0];
    if (file) void send(file);
  }

  return (
    <>
      <div
        className={over ? "dropzone over" : "dropzone"}
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
        data-testid="dropzone"
      >
        <label htmlFor="plate-file">
          Drop a plate image here, or choose one (PNG, JPEG or TIFF; 8- or 16-bit, grey or RGB)
        </label>
        <input
          id="plate-file"
          type="file"
          accept={ACCEPT}
          onChange={(e) => {
            const file = e.target.files?.[0];
            if (file) void send(file);
            e.target.value = "";
          }}
        />
      </div>
      <StatusLine status={status} />
      <ErrorAlert error={error} />
      {pred && (
        <>
          <PlateViewer pred={pred} label={name} />
          <h2>Plants</h2>
          <PlantsTable plants={pred.plants} threshold={pred.certainty.low_confidence_threshold} />
          <h2>Certainty per class</h2>
          <table className="compact">
            <caption className="visually-hidden">Mean certainty of each class's pixels</caption>
            <thead>
              <tr>
                <th scope="col">class</th>
                <th scope="col">certainty</th>
              </tr>
            </thead>
            <tbody>
              {Object.entries(pred.certainty.per_class).map(([cls, v]) => (
                <tr key={cls}>
                  <th scope="row">{cls}</th>
                  <td>{v.toFixed(3)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </>
  );
}
