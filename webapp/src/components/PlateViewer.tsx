// The plate with its masks (one tinted layer per class, each switchable) and its
// landmarks (an SVG layer in image coordinates: plant numbers, flagged tips dashed),
// zoomable. Class and landmark kinds come from the prediction, not from this file.
import { useEffect, useMemo, useRef, useState } from "react";
import type { Prediction } from "../api";

const PALETTE: [number, number, number][] = [
  [0, 190, 255],
  [40, 220, 40],
  [255, 200, 0],
  [255, 60, 200],
  [255, 120, 40],
  [160, 120, 255],
];
const ZOOMS = [0.1, 0.25, 0.5, 1, 2, 4];

function loadImage(src: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the image could not be decoded"));
    img.src = src;
  });
}

/** A mask (0/255 grey PNG) as a canvas: its pixels in the class's colour, the rest clear. */
async function tinted(b64: string, rgb: [number, number, number]): Promise<HTMLCanvasElement> {
  const img = await loadImage(`data:image/png;base64,${b64}`);
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d")!;
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const px = data.data;
  for (let i = 0; i < px.length; i += 4) {
    const on = px[i] > 127;
    px[i] = rgb[0];
    px[i + 1] = rgb[1];
    px[i + 2] = rgb[2];
    px[i + 3] = on ? 140 : 0;
  }
  ctx.putImageData(data, 0, 0);
  return canvas;
}

const colour = (rgb: [number, number, number]) => `rgb(${rgb.join(",")})`;

export default function PlateViewer({ pred, label }: { pred: Prediction; label: string }) {
  const { width, height } = pred.image;
  const classes = useMemo(() => Object.keys(pred.masks ?? {}), [pred]);
  const kinds = useMemo(() => [...new Set(pred.landmarks.map((l) => l.kind))], [pred]);
  const [shown, setShown] = useState<Record<string, boolean>>({});
  const [zoom, setZoom] = useState<number | "fit">("fit");
  const [fitScale, setFitScale] = useState(1);
  const [layers, setLayers] = useState<{ base: HTMLImageElement | null; masks: Record<string, HTMLCanvasElement> }>({
    base: null,
    masks: {},
  });
  const [error, setError] = useState<string | null>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const frame = useRef<HTMLDivElement>(null);
  const threshold = pred.certainty.low_confidence_threshold;

  useEffect(() => {
    setShown(Object.fromEntries([...classes, ...kinds].map((c) => [c, c !== "occluded_root"])));
    let alive = true;
    (async () => {
      const base = pred.preview ? await loadImage(`data:image/jpeg;base64,${pred.preview}`) : null;
      const masks: Record<string, HTMLCanvasElement> = {};
      for (const [i, cls] of classes.entries()) masks[cls] = await tinted(pred.masks![cls], PALETTE[i % PALETTE.length]);
      if (alive) setLayers({ base, masks });
    })().catch((exc) => alive && setError(String(exc)));
    return () => {
      alive = false;
    };
  }, [pred, classes, kinds]);

  useEffect(() => {
    const el = frame.current;
    if (!el) return;
    const measure = () => setFitScale(Math.min(1, (el.clientWidth - 4) / width));
    measure();
    const obs = new ResizeObserver(measure);
    obs.observe(el);
    return () => obs.disconnect();
  }, [width]);

  useEffect(() => {
    const ctx = canvas.current?.getContext("2d");
    if (!ctx) return;
    ctx.fillStyle = "#202020";
    ctx.fillRect(0, 0, width, height);
    if (layers.base) ctx.drawImage(layers.base, 0, 0, width, height);
    for (const cls of classes) if (shown[cls] && layers.masks[cls]) ctx.drawImage(layers.masks[cls], 0, 0, width, height);
  }, [layers, shown, classes, width, height]);

  const scale = zoom === "fit" ? fitScale : zoom;
  const r = Math.max(width, height) / 180;
  const step = (dir: 1 | -1) => {
    const i = ZOOMS.findIndex((z) => z >= scale - 1e-9);
    const next = dir > 0 ? ZOOMS.find((z) => z > scale + 1e-9) : [...ZOOMS].reverse().find((z) => z < scale - 1e-9);
    setZoom(next ?? ZOOMS[Math.max(0, i)]);
  };

  return (
    <section aria-label={`Prediction for ${label}`} className="viewer">
      <div className="toolbar">
        <fieldset>
          <legend>Masks</legend>
          {classes.map((cls, i) => (
            <label key={cls} className="toggle">
              <input
                type="checkbox"
                checked={!!shown[cls]}
                onChange={(e) => setShown({ ...shown, [cls]: e.target.checked })}
              />
              <span className="swatch" style={{ background: colour(PALETTE[i % PALETTE.length]) }} aria-hidden />
              {cls}
            </label>
          ))}
        </fieldset>
        <fieldset>
          <legend>Landmarks</legend>
          {kinds.map((k) => (
            <label key={k} className="toggle">
              <input type="checkbox" checked={!!shown[k]} onChange={(e) => setShown({ ...shown, [k]: e.target.checked })} />
              {k.replaceAll("_", " ")}
            </label>
          ))}
        </fieldset>
        <fieldset>
          <legend>Zoom</legend>
          <button type="button" onClick={() => step(-1)} aria-label="Zoom out">
            −
          </button>
          <output aria-live="polite" data-testid="zoom">
            {Math.round(scale * 100)} %
          </output>
          <button type="button" onClick={() => step(1)} aria-label="Zoom in">
            +
          </button>
          <button type="button" onClick={() => setZoom("fit")}>
            Fit
          </button>
        </fieldset>
      </div>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <div className="frame" ref={frame} tabIndex={0} aria-label="Plate image; scroll to pan">
        <div className="stack" style={{ width: width * scale, height: height * scale }}>
          <canvas
            ref={canvas}
            width={width}
            height={height}
            role="img"
            aria-label={`${label}: ${classes.filter((c) => shown[c]).join(", ") || "no"} masks shown`}
          />
          <svg viewBox={`0 0 ${width} ${height}`} aria-label="Landmarks" role="group" data-testid="landmarks">
            {pred.landmarks
              .filter((l) => shown[l.kind])
              .map((l, i) => {
                const primary = l.kind === "primary_root_tip";
                const low = l.confidence < threshold;
                return (
                  <g key={i} className={`lm ${l.kind}${low ? " low" : ""}`} data-plant={l.plant}>
                    <title>
                      {`${l.kind.replaceAll("_", " ")}, plant ${l.plant}, confidence ${l.confidence.toFixed(2)}` +
                        (low ? " (low)" : "")}
                    </title>
                    <circle cx={l.x} cy={l.y} r={primary ? r : r * 0.6} strokeWidth={r / 4} />
                    {primary && (
                      <text x={l.x + r * 1.3} y={l.y + r * 0.5} fontSize={r * 2.4} strokeWidth={r / 3}>
                        {l.plant}
                      </text>
                    )}
                  </g>
                );
              })}
          </svg>
        </div>
      </div>
    </section>
  );
}
