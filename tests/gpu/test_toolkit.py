"""Finding the GPU (nvidia-smi's real output) and the CUDA toolkit's pieces."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.gpu.toolkit import (
    EXIT_NO_GPU,
    EXIT_NO_TOOLKIT,
    Unmet,
    cuda_architectures,
    find_toolkit,
    parse_smi_csv,
    query_gpus,
)
from tests.gpu.helpers import DATA, cublas_wheel, fake_toolkit, minimal_path, replay


def test_two_gpus_parsed_by_header_whatever_the_column_order() -> None:
    gpus = parse_smi_csv((DATA / "smi-two-gpus.csv").read_text())
    assert [(g.index, g.name, g.compute_cap, g.driver) for g in gpus] == [
        (0, "NVIDIA TITAN V", "7.0", "570.86.15"),
        (1, "NVIDIA RTX 5880 Ada Generation", "8.9", "570.86.15")]
    assert cuda_architectures(gpus) == "70;89"


def test_compute_cap_alone_is_enough() -> None:
    gpus = parse_smi_csv((DATA / "smi-compute-cap-only.csv").read_text())
    assert [(g.index, g.arch) for g in gpus] == [(0, "89")]


def test_an_old_nvidia_smi_is_quoted_not_misread() -> None:
    with pytest.raises(ValueError, match='Field "compute_cap" is not a valid field'):
        parse_smi_csv((DATA / "smi-old-driver.txt").read_text())


def test_a_csv_without_compute_cap_names_its_columns_without_units() -> None:
    with pytest.raises(ValueError, match=r"no compute_cap column \(columns: name, fan.speed, "
                                         r"memory.total"):
        parse_smi_csv((DATA / "smi-memory-units.csv").read_text())


def test_no_nvidia_smi_means_no_gpu(tmp_path: Path) -> None:
    with pytest.raises(Unmet) as err:
        query_gpus({"PATH": str(tmp_path)})
    assert err.value.code == EXIT_NO_GPU and "nvidia-smi is not on PATH" in str(err.value)


def test_a_driver_that_does_not_answer_is_quoted(tmp_path: Path) -> None:
    replay(tmp_path, "nvidia-smi", "smi-no-driver.txt", rc=9)
    with pytest.raises(Unmet) as err:
        query_gpus({"PATH": str(tmp_path)})
    assert err.value.code == EXIT_NO_GPU
    assert "couldn't communicate with the NVIDIA driver" in str(err.value)


def test_gpus_come_from_nvidia_smi_on_path(tmp_path: Path) -> None:
    replay(tmp_path, "nvidia-smi", "smi-two-gpus.csv")
    assert [g.arch for g in query_gpus({"PATH": str(tmp_path)})] == ["70", "89"]


def test_no_nvcc_means_no_toolkit(tmp_path: Path) -> None:
    with pytest.raises(Unmet) as err:
        find_toolkit({"PATH": str(tmp_path)}, site_dirs=[])
    assert err.value.code == EXIT_NO_TOOLKIT and "nvcc is not on PATH" in str(err.value)


def test_nvcc_without_cublas_is_an_incomplete_toolkit(tmp_path: Path) -> None:
    bin_dir = fake_toolkit(tmp_path / "cuda")
    with pytest.raises(Unmet) as err:
        find_toolkit({"PATH": str(bin_dir)}, site_dirs=[])
    assert err.value.code == EXIT_NO_TOOLKIT and "no cuBLAS library" in str(err.value)


def test_cuda_home_finds_nvcc_and_a_pip_wheel_finds_cublas(tmp_path: Path) -> None:
    root = tmp_path / "cuda-13.0"
    fake_toolkit(root)
    site = cublas_wheel(tmp_path / "site")
    tk = find_toolkit({"PATH": "", "CUDA_HOME": str(root)}, site_dirs=[str(site)])
    assert tk.version == "13.0" and tk.root == str(root) and tk.nvcc == str(root / "bin/nvcc")
    args = tk.cmake_args()
    lib = site / "nvidia" / "cu13" / "lib"
    assert f"-DCUDA_cublas_LIBRARY={lib / 'libcublas.so.13'}" in args
    assert f"-DCUDA_cublasLt_LIBRARY={lib / 'libcublasLt.so.13'}" in args
    assert f"-DCMAKE_CUDA_FLAGS=-I{site / 'nvidia' / 'cu13' / 'include'}" in args
    # without a driver library to link, VMM is off; with one, it is linked by path
    assert ("-DGGML_CUDA_NO_VMM=ON" in args) == (tk.driver_lib is None)
    assert str(lib) in tk.runtime_dirs


def test_a_driver_library_on_ld_library_path_is_linked(tmp_path: Path) -> None:
    root = tmp_path / "cuda"
    fake_toolkit(root)
    site = cublas_wheel(tmp_path / "site")
    drv = tmp_path / "nvidia" / "lib64"
    drv.mkdir(parents=True)
    (drv / "libcuda.so.1").write_text("")
    tk = find_toolkit({"PATH": str(root / "bin"), "LD_LIBRARY_PATH": str(drv)},
                      site_dirs=[str(site)])
    assert tk.driver_lib == str(drv / "libcuda.so.1")
    assert f"-DCUDA_cuda_driver_LIBRARY={drv / 'libcuda.so.1'}" in tk.cmake_args()
    assert "-DGGML_CUDA_NO_VMM=ON" not in tk.cmake_args()


def test_cmake_and_ninja_are_found_for_the_build(tmp_path: Path) -> None:
    from bench.gpu.toolkit import find_build_tools

    bin_dir = tmp_path / "bin"
    minimal_path(bin_dir)
    if not (bin_dir / "cmake").exists():  # this machine has no cmake on PATH at all
        with pytest.raises(Unmet, match="no cmake"):
            find_build_tools({"PATH": str(bin_dir)})
        return
    assert find_build_tools({"PATH": str(bin_dir)}) == [str(bin_dir)]
    try:
        dirs = find_build_tools({"PATH": str(tmp_path / "empty")})
    except Unmet as err:
        assert err.code == EXIT_NO_TOOLKIT and "pip install cmake" in str(err)
    else:  # the cmake pip package is installed for this Python
        assert (Path(dirs[0]) / "cmake").is_file()
