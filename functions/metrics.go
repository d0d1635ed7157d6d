package functions

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ripplehq/ripple/queries"
)

// RegisterMetrics adds the chat's gauges to reg (the engine's MetricsRegistry): the embedding
// queue's length, read when scraped. db's search_path must name the chat's schema (the engine's
// pool does).
func RegisterMetrics(reg prometheus.Registerer, db queries.DBTX) error {
	return reg.Register(&embeddingQueueCollector{db: db})
}

type embeddingQueueCollector struct{ db queries.DBTX }

var embeddingQueueDesc = prometheus.NewDesc("ripple_embedding_queue",
	"Messages waiting for their embedding (the sweep's queue, leased or not); it should drain to 0 between bursts.", nil, nil)

func (c *embeddingQueueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- embeddingQueueDesc }

func (c *embeddingQueueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := queries.New().EmbeddingQueueLength(ctx, c.db)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(embeddingQueueDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(embeddingQueueDesc, prometheus.GaugeValue, float64(n))
}
