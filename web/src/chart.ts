// The candle chart: lightweight-charts (TradingView's library, from npm) draws it; this module
// only feeds it the API's candles, one bar per `start`, and keeps the count in the chart
// container's `data-candles` attribute (what the end-to-end test waits for).

import {
  CandlestickSeries,
  ColorType,
  CrosshairMode,
  HistogramSeries,
  type IChartApi,
  type ISeriesApi,
  type UTCTimestamp,
  createChart,
} from 'lightweight-charts';
import type { Candle } from './api';
import { approx, places } from './dec';

const UP = '#0ecb81';
const DOWN = '#f6465d';
/** Fewer candles than this are spread over the chart's width. */
const FIT_BELOW_CANDLES = 60;

/** lightweight-charts shows times as UTC; shifting each bar by the local offset shows the
 * user's clock instead. */
function localSeconds(ms: number): UTCTimestamp {
  const offsetMinutes = new Date(ms).getTimezoneOffset();
  return (Math.floor(ms / 1000) - offsetMinutes * 60) as UTCTimestamp;
}

export class CandleChart {
  private readonly chart: IChartApi;
  private readonly candles: ISeriesApi<'Candlestick'>;
  private readonly volume: ISeriesApi<'Histogram'>;
  private readonly byStart = new Map<number, Candle>();
  private newestStart = -Infinity;

  constructor(
    private readonly container: HTMLElement,
    tickSize: string,
  ) {
    this.chart = createChart(container, {
      autoSize: true,
      layout: {
        background: { type: ColorType.Solid, color: 'transparent' },
        textColor: '#848e9c',
        fontFamily: 'ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
        fontSize: 11,
      },
      grid: {
        vertLines: { color: 'rgba(132, 142, 156, 0.08)' },
        horzLines: { color: 'rgba(132, 142, 156, 0.08)' },
      },
      crosshair: { mode: CrosshairMode.Normal },
      rightPriceScale: { borderColor: 'rgba(132, 142, 156, 0.2)' },
      timeScale: {
        borderColor: 'rgba(132, 142, 156, 0.2)',
        timeVisible: true,
        secondsVisible: false,
        barSpacing: 9,
        maxBarSpacing: 28,
        rightOffset: 4,
      },
    });
    const precision = places(tickSize);
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      wickUpColor: UP,
      wickDownColor: DOWN,
      borderVisible: false,
      priceFormat: { type: 'price', precision, minMove: approx(tickSize) || 0.01 },
    });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceFormat: { type: 'volume' },
      priceScaleId: 'volume',
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.chart.priceScale('volume').applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.22 } });
    this.container.dataset.candles = '0';
  }

  /** Decimals of the price scale (a converted price has more than the product's grid). */
  setPrecision(places: number): void {
    this.candles.applyOptions({ priceFormat: { type: 'price', precision: places, minMove: 10 ** -places } });
  }

  /** Shows seconds on the time axis for the 1-second interval. */
  setInterval(interval: string): void {
    this.chart.applyOptions({ timeScale: { secondsVisible: interval === '1s' } });
  }

  /** Replaces every candle (a snapshot, or a new interval). */
  set(candles: Candle[]): void {
    this.byStart.clear();
    this.newestStart = -Infinity;
    for (const candle of candles) this.byStart.set(candle.start, candle);
    this.redraw();
    // A short history fills the width (bars no wider than maxBarSpacing); a long one shows
    // its newest part.
    if (this.byStart.size < FIT_BELOW_CANDLES) this.chart.timeScale().fitContent();
    else this.chart.timeScale().scrollToRealTime();
  }

  /** Adds or replaces one candle: the open one as it grows, or an older one a late tick
   * amended (then everything is drawn again, since the library only appends). */
  upsert(candle: Candle): void {
    this.byStart.set(candle.start, candle);
    if (candle.start >= this.newestStart) {
      this.newestStart = candle.start;
      this.candles.update(this.bar(candle));
      this.volume.update(this.volumeBar(candle));
      this.container.dataset.candles = String(this.byStart.size);
    } else {
      this.redraw();
    }
  }

  /** Merges a batch (the channel's snapshot over what HTTP gave). */
  merge(candles: Candle[]): void {
    for (const candle of candles) {
      // The open candle only grows: keep whichever version has seen more ticks.
      const known = this.byStart.get(candle.start);
      if (!known || candle.count >= known.count) this.byStart.set(candle.start, candle);
    }
    this.redraw();
  }

  get count(): number {
    return this.byStart.size;
  }

  dispose(): void {
    this.chart.remove();
  }

  private redraw(): void {
    const sorted = [...this.byStart.values()].sort((a, b) => a.start - b.start);
    this.candles.setData(sorted.map((c) => this.bar(c)));
    this.volume.setData(sorted.map((c) => this.volumeBar(c)));
    const newest = sorted[sorted.length - 1];
    this.newestStart = newest ? newest.start : -Infinity;
    this.container.dataset.candles = String(sorted.length);
  }

  private bar(c: Candle) {
    return {
      time: localSeconds(c.start),
      open: approx(c.open),
      high: approx(c.high),
      low: approx(c.low),
      close: approx(c.close),
    };
  }

  private volumeBar(c: Candle) {
    return {
      time: localSeconds(c.start),
      value: approx(c.volume),
      color: approx(c.close) >= approx(c.open) ? 'rgba(14, 203, 129, 0.35)' : 'rgba(246, 70, 93, 0.35)',
    };
  }
}
