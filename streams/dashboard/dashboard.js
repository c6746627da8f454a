// Live view of one worker: a "snapshot" event every second redraws the figures,
// and each "match" event adds a match to the feed. Every value from the server is
// inserted as text or as an image data URL, never as markup, because previews
// contain user input.
"use strict";

(() => {
  // Match events kept on the page, as many as the server keeps (MatchFeed).
  const FEED_LENGTH = 50;
  const EMPTY = "–";

  const byId = (id) => document.getElementById(id);

  const formatCount = (value) => Math.round(value).toLocaleString("en-US");

  const formatRate = (value) => (value == null ? EMPTY : value.toFixed(value < 10 ? 2 : 1));

  const formatSeconds = (value) => {
    if (value == null) return EMPTY;
    return value < 1 ? `${(value * 1000).toFixed(1)} ms` : `${value.toFixed(2)} s`;
  };

  const formatBytes = (value) => `${(value / 2 ** 20).toFixed(1)} MiB`;

  const sum = (rows, pick) => rows.reduce((total, row) => total + (pick(row) ?? 0), 0);

  // A rate sum is unknown until the server has two readings to compare.
  const sumRates = (rows, pick) => (rows.some((row) => pick(row) == null) ? null : sum(rows, pick));

  function fillTable(id, rows, cells, emptyText) {
    const body = document.querySelector(`#${id} tbody`);
    const columns = document.querySelectorAll(`#${id} thead th`).length;
    const lines = rows.map((row) => {
      const line = document.createElement("tr");
      for (const value of cells(row)) {
        const cell = document.createElement("td");
        cell.textContent = value;
        line.append(cell);
      }
      return line;
    });
    if (lines.length === 0) {
      const line = document.createElement("tr");
      const cell = document.createElement("td");
      cell.colSpan = columns;
      cell.className = "empty";
      cell.textContent = emptyText;
      line.append(cell);
      lines.push(line);
    }
    body.replaceChildren(...lines);
  }

  function setTotal(name, total, rate) {
    byId(`total-${name}`).textContent = formatCount(total);
    byId(`rate-${name}`).textContent = rate == null ? "" : `${formatRate(rate)}/s`;
  }

  function renderSnapshot(snapshot) {
    setTotal("consumed", sum(snapshot.consumed, (row) => row.total), sumRates(snapshot.consumed, (row) => row.per_s));
    setTotal(
      "embedded",
      sum(snapshot.throughput, (row) => row.embedded_total),
      sumRates(snapshot.throughput, (row) => row.embedded_per_s),
    );
    setTotal(
      "matches",
      sum(snapshot.throughput, (row) => row.matches_total),
      sumRates(snapshot.throughput, (row) => row.matches_per_s),
    );
    setTotal(
      "deadletters",
      sum(snapshot.deadletters, (row) => row.total),
      sumRates(snapshot.deadletters, (row) => row.per_s),
    );

    fillTable("throughput", snapshot.throughput, (row) => [
      row.modality, row.space, formatRate(row.embedded_per_s), formatRate(row.matches_per_s),
      formatCount(row.embedded_total), formatCount(row.matches_total),
    ], "no input embedded yet");
    fillTable("latency", snapshot.latency, (row) => [
      row.modality, row.space, formatSeconds(row.p50_s), formatSeconds(row.p95_s), formatSeconds(row.p99_s),
      formatCount(row.observations),
    ], "no input finished in the window");
    fillTable("lag", snapshot.lag, (row) => [row.topic, row.partition, formatCount(row.records)],
      "no partition assigned yet");
    fillTable("batches", snapshot.batches, (row) => [
      row.modality, row.space, formatRate(row.batches_per_s),
      row.mean_size == null ? EMPTY : row.mean_size.toFixed(1),
      formatSeconds(row.mean_fill_wait_s), formatSeconds(row.p95_fill_wait_s),
    ], "no batch yet");
    fillTable("stages", snapshot.stages, (row) => [
      row.modality, row.space, row.stage, formatSeconds(row.mean_s), formatSeconds(row.p95_s),
    ], "no batch yet");
    fillTable("deadletters", snapshot.deadletters, (row) => [row.label, formatCount(row.total), formatRate(row.per_s)],
      "no record rejected");
    fillTable("retries", snapshot.retries, (row) => [row.label, formatCount(row.total), formatRate(row.per_s)],
      "no retry");
    fillTable("consumed", snapshot.consumed, (row) => [row.label, formatCount(row.total), formatRate(row.per_s)],
      "no record consumed yet");
    fillTable("index-documents", snapshot.index_documents, (row) => [row.label, formatCount(row.value)],
      "not read yet");
    fillTable("cuda-memory", snapshot.cuda_memory_bytes, (row) => [row.label, formatBytes(row.value)],
      "no CUDA device");

    const span = snapshot.window_s == null ? "" : `, rates over ${snapshot.window_s.toFixed(0)} s`;
    byId("updated").textContent = `updated ${new Date(snapshot.taken_at * 1000).toLocaleTimeString()}${span}`;
  }

  // Only thumbnails the worker made (JPEG data URLs) become images, and anything else is text.
  const THUMBNAIL_PREFIX = "data:image/jpeg;base64,";

  function previewNode(item) {
    if (item.preview.startsWith(THUMBNAIL_PREFIX)) {
      const image = document.createElement("img");
      image.src = item.preview;
      image.alt = `${item.modality} ${item.id}`;
      image.className = "thumbnail";
      return image;
    }
    const text = document.createElement("span");
    text.className = "snippet";
    text.textContent = item.preview || "(no preview stored)";
    return text;
  }

  function itemNode(item, tag) {
    const node = document.createElement(tag);
    node.className = "item";
    const label = document.createElement("span");
    label.className = "item-label";
    const similarity = item.similarity == null ? "" : ` · ${item.similarity.toFixed(3)}`;
    label.textContent = `${item.modality} ${item.id}${similarity}`;
    node.append(label, previewNode(item));
    return node;
  }

  let lastSequence = 0;

  function addMatch(entry) {
    const feed = byId("feed");
    // Sequence numbers restart with the worker, so a lower one means a new feed.
    if (entry.sequence <= lastSequence) feed.replaceChildren();
    lastSequence = entry.sequence;

    const line = document.createElement("li");
    line.className = "match";
    line.dataset.sequence = String(entry.sequence);
    const heading = document.createElement("div");
    heading.className = "match-heading";
    heading.textContent = `#${entry.sequence} · ${entry.space} · ${new Date(entry.emitted_at * 1000).toLocaleTimeString()}`;
    const matches = document.createElement("ul");
    matches.className = "matches";
    matches.append(...entry.matches.map((item) => itemNode(item, "li")));
    line.append(heading, itemNode(entry.source, "div"), matches);

    feed.prepend(line);
    while (feed.children.length > FEED_LENGTH) feed.lastElementChild.remove();
    byId("feed-empty").hidden = true;
  }

  function setStatus(state, text) {
    const status = byId("status");
    status.dataset.state = state;
    status.textContent = text;
  }

  const source = new EventSource("events");
  source.addEventListener("open", () => setStatus("live", "live"));
  source.addEventListener("error", () => setStatus("reconnecting", "reconnecting"));
  source.addEventListener("snapshot", (event) => renderSnapshot(JSON.parse(event.data)));
  source.addEventListener("match", (event) => addMatch(JSON.parse(event.data)));
})();
