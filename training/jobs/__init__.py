"""The training jobs, one module per stage; each stage hands the next a typed result.

    data (training.data) -> baselines -> ddnn (one per weight pair) -> offloaders -> evaluate
        -> register (the champion) ; run_all chains them and writes the report.

Every job is one MLflow run (nested under the caller's run, if any) named after what it trains:
"ddnn wL=0.9", "baseline deepcog", "offloader wL=0.9 C_T=0.012", "evaluate wL=0.9". Everything
also lands in the results folder (``--out``), so it can be read without MLflow:

    <out>/sweep.json                    validation and test costs of every weight pair
    <out>/models/ddnn-wL0.9/            DDNN bundle (registry format) of each weight pair
    <out>/models/offloader-wL0.9/       offloader bundle (the registered champion's)
    <out>/models/baselines/<name>/      centralized baselines (config.json + weights.pt)
"""
